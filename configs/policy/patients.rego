# Patients: which patients a resource belongs to, whose records the caller
# is (the self-only rule for the patient role), and the rule that keeps
# staff out of their own and their relatives' records.
package chartguard

import data.chartguard_data as cfg
import input.resource
import input.user

# records_ok(role) holds when role may touch the resource's patients:
#
#   - a self-only role (data.chartguard_data.self_only_roles, and "patient"
#     always, so data that forgets it cannot widen a patient's access) only
#     the caller's own and linked records (self_ok), and never
#     psychotherapy notes among them (psychotherapy_note);
#   - any other role never a record the caller is linked to
#     (user.patient_links, or a fhir_user that is a Patient).
#
# Security: staff reading their own or a relative's chart through their
# work role is the conflict of interest HIPAA audits look for first, and
# break-the-glass cannot open it either (no role grants it). Threat: an
# employee-patient browsing their own or a family member's record outside
# the patient portal. Accepted risk: links are as complete as the identity
# provider and the staff_patient_links data make them; employee_patients
# (labels.rego) covers colleagues.
default records_ok(_) := false

records_ok(role) if {
	role != "patient"
	not cfg.self_only_roles[role]
	not touches_linked
} else if {
	self_only(role)
	self_ok
	not psychotherapy_note
}

# psychotherapy_note holds for a resource labelled as psychotherapy notes
# (data.chartguard_data.psychotherapy_note_labels, PSYTHPN as shipped).
#
# Security: HIPAA 164.524(a)(1)(i) excludes psychotherapy notes from an
# individual's right of access, so a self-only role (a patient, or a
# patient's app) is refused them on its own and linked records alike,
# whatever sensitive_labels says, and is offered no break-the-glass (no
# role grants it: records_ok fails). Staff roles see them as any other
# sensitive record (labels.rego).
psychotherapy_note if {
	some label in resource.labels
	cfg.psychotherapy_note_labels[label]
}

# touches_linked holds when a patient of the resource is linked to the
# caller: by the identity provider (linked_patients) or, for staff, by
# data.chartguard_data.staff_patient_links, their own and their relatives'
# records as the privacy office keeps them (the identity provider names a
# patient link only for a patient's own login). Staff links only keep
# staff out: they open nothing to a self-only role.
touches_linked if {
	some p in resource.patients
	linked_patients[p]
}

touches_linked if {
	some p in resource.patients
	cfg.staff_patient_links[user.fhir_user][p]
}

# Links the policy cannot read might name any patient: patient_links
# present (not absent or false) but not a list of strings.
touches_linked if {
	links := user.patient_links
	not links == false
	not strings_array(links)
}

# names_patients holds when the request proves which patients it touches:
# its status is known and it names at least one patient id.
names_patients if {
	resource.patient_status == "known"
	some p in resource.patients
	is_string(p)
}

# linked_patients is the set of patient ids the caller is or is linked to:
# user.patient_links and a fhir_user, each "Patient/<id>".
linked_patients contains id if {
	some link in user.patient_links
	id := patient_id(link)
}

linked_patients contains id if id := patient_id(user.fhir_user)

patient_id(ref) := id if {
	is_string(ref)
	startswith(ref, "Patient/")
	id := substring(ref, count("Patient/"), -1)
	id != ""
	not contains(id, "/")
}

# self_ok holds for a self-only role when every patient the resource
# belongs to is linked to the caller, or when the request is a FHIR read by
# id whose patient only the response shows.
#
# Security: a read, vread or history of one resource by id names no
# patient until the EMR answers. It passes the request phase and the
# response phase decides the resource itself (own_records, with the
# patients the resource belongs to) before any byte reaches the client.
# Only FHIR requests defer: a route's response is not checked per
# resource. Searches do not defer for a self-only role: a patient names
# their own patients, and a search over every patient would let the EMR's
# totals and paging describe other patients' records.
self_ok if own_records

self_ok if {
	patients_pending
	read_by_id
}

# own_records holds when the resource names its patients and every one is
# linked to the caller.
own_records if {
	names_patients
	every p in resource.patients {
		linked_patients[p]
	}
}

# self_only(role) holds for the roles that may only touch the caller's own
# records.
self_only(role) if role == "patient"

self_only(role) if cfg.self_only_roles[role]

# patients_pending holds for a FHIR request whose patients only the
# response can show: the request phase lets it pass the rules that need
# patients, and the response phase decides each resource on its own
# patients. Only an explicit phase "request" defers, so input without a
# phase is decided as a response would be.
patients_pending if {
	resource.phase == "request"
	resource.kind == "fhir"
	not names_patients
}

# read_by_id holds for a read, vread or history of one resource.
read_by_id if resource.action in {"read", "vread"}

read_by_id if {
	resource.action == "history"
	resource.interaction == "history-instance"
}
