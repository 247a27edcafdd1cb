# Care teams: the roles in data.chartguard_data.care_team_roles (physician
# and nurse by default) see clinical data only of patients whose care team
# the user is on.
#
# Care relationships come from two sources: static care teams in the data
# (care_teams, keyed by user.fhir_user exactly as the token carries it,
# then patient id; for tests and the demo, whose EMR they mirror:
# examples/fhir-demo/careteams_test.go), and
# input.relationship[patient].care_team, which ChartGuard fills from the
# EMR. Either suffices.
package chartguard

import data.chartguard_data as cfg
import input.resource
import input.user

# care_ok(role) holds unless role needs a care relationship and the user
# does not have one with every patient of the resource.
#
# A role outside care_team_roles (lab, billing, him, ...) is not subject
# to the rule, nor are non-clinical types (Practitioner, Organization,
# ...). A user who also has such a role is granted through it: the rule
# binds a user only when every role that grants the request is a care-team
# role.
#
# Security: while the patients are pending (a FHIR request whose patients
# only the response shows, patients.rego) the rule is left to the response
# phase, which decides every resource on the patients it belongs to; the
# rules that deny unnamed patients (denials.rego) cover writes and
# operations. Everywhere else (routes, the response phase, input without
# a phase) unknown patients fail the rule: the user cannot be shown to be
# on their team. Threat: a clinician browsing charts of patients they do
# not treat. Accepted risk: static care teams are as current as the data;
# break-the-glass (a later issue) covers emergencies.
#
# The conditions are an else chain so that evaluation stops at the first
# that holds (OPA evaluates every body of a function otherwise).
default care_ok(_) := false

care_ok(role) if {
	not cfg.care_team_roles[role]
} else if {
	not cfg.clinical_types[resource.type]
} else if {
	on_care_team
} else if {
	patients_pending
}

# on_care_team holds when the resource names its patients and the user is
# on the care team of every one.
on_care_team if {
	names_patients
	every p in resource.patients {
		on_team(p)
	}
}

# on_team(p) holds when the user is on patient p's care team.
on_team(p) if cfg.care_teams[user.fhir_user][p]

on_team(p) if input.relationship[p].care_team == true
