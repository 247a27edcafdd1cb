# Care relationships: the roles in data.chartguard_data.care_team_roles
# (physician and nurse as shipped) see clinical data, and any other
# resource that belongs to a patient (an Appointment, a RelatedPerson, a
# Coverage: whatever ChartGuard does not classify as holding no patient
# data, patient_status "none"), only of patients they have a care
# relationship with. Without one the request is denied and, for a role in
# break_glass_roles, break-the-glass is offered (breakglass.rego); an
# active grant for the patient stands in for the relationship, except for
# writes to relationship_types (below).
#
# A relationship is any of:
#
#   - a static care team in the data: care_teams, keyed by user.fhir_user
#     exactly as the token carries it, then patient id (for tests and the
#     demo, whose EMR they mirror: examples/fhir-demo/careteams_test.go);
#   - what ChartGuard found in the EMR, input.relationship[patient]:
#     care_team true, pcp true, an encounter at most encounter_window_days
#     days ago (encounter_days_ago, a number), or the patient's current
#     department equal to user.department (both non-empty).
#
# Roles outside care_team_roles (lab, pharmacist, registration, billing,
# him, ...) work from orders and queues rather than panels and are not
# subject to the rule; sensitivity (labels.rego) still binds them.
#
# Writes to data.chartguard_data.relationship_types (CareTeam, Encounter,
# EpisodeOfCare and Patient as shipped: the resources ChartGuard derives
# care relationships from, Patient through generalPractitioner) need a
# real relationship: under a break-the-glass grant alone a clinician could
# otherwise add themselves to the patient's care team, or open an
# encounter, and keep the access after the grant expires. Break-the-glass
# is not offered for them either (breakglass.rego).
package chartguard

import data.chartguard_data as cfg
import input.resource
import input.user

# care_ok(role) holds unless role needs a care relationship and the user
# has neither one nor a break-the-glass grant with every patient of the
# resource.
#
# Security: while the patients are pending (a FHIR request whose patients
# only the response shows, patients.rego) the rule is left to the response
# phase, which decides every resource on the patients it belongs to; the
# rules that deny unnamed patients (denials.rego) cover writes and
# operations. Everywhere else unknown patients fail the rule: the user
# cannot be shown to have a relationship with them. Threat: a clinician
# browsing charts of patients they do not treat. Accepted risk: static
# care teams are as current as the data, and relationships as current as
# ChartGuard's relationship cache.
#
# The conditions are an else chain so that evaluation stops at the first
# that holds (OPA evaluates every body of a function otherwise).
default care_ok(_) := false

care_ok(role) if {
	not cfg.care_team_roles[role]
} else if {
	no_patient_data
} else if {
	names_patients
	every p in resource.patients {
		cared_for(role, p)
	}
} else if {
	patients_pending
}

# no_patient_data holds for a resource that belongs to no patient: a type
# outside clinical_types that ChartGuard classifies as holding no patient
# data (patient_status "none", no patients), such as a Practitioner or a
# Location. Any other type, with patients known, unknown or pending, is
# decided on its patients like clinical data.
no_patient_data if {
	not cfg.clinical_types[resource.type]
	resource.patient_status == "none"
	resource.patients == []
}

# cared_for(role, p) holds when the user has a care relationship with
# patient p, or role holds an active break-the-glass grant for p and the
# request does not write a resource care relationships derive from.
default cared_for(_, _) := false

cared_for(role, p) if {
	related(p)
} else if {
	not relationship_write
	break_glass_open(role, p)
}

# relationship_write holds for a write to a type ChartGuard derives care
# relationships from (relationship_types).
relationship_write if {
	cfg.relationship_types[resource.type]
	resource.action in {"create", "update", "patch", "delete"}
}

# related(p) holds when the user has a care relationship with patient p.
# It is false, not undefined, otherwise: OPA remembers a call's value but
# not its absence, so a denial that asks again (fast_denial) is answered
# from the cache.
related(p) if {
	cfg.care_teams[user.fhir_user][p]
} else if {
	input.relationship[p].care_team == true
} else if {
	input.relationship[p].pcp == true
} else if {
	days := input.relationship[p].encounter_days_ago
	is_number(days)
	days >= 0
	days <= cfg.encounter_window_days
} else if {
	dept := input.relationship[p].department
	is_string(dept)
	dept != ""
	dept == user.department
} else := false
