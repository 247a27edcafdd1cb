# Patients: which patients a resource belongs to, and the self-only rule
# for the patient role.
package chartguard

import data.chartguard_data as cfg
import input.resource
import input.user

# records_ok(role) holds unless role may only touch the caller's own
# records and the resource is not the caller's own. Self-only roles are
# those in data.chartguard_data.self_only_roles, and "patient" always, so
# data that forgets it cannot widen a patient's access.
records_ok(role) if {
	role != "patient"
	not cfg.self_only_roles[role]
}

records_ok(_) if self_ok

# names_patients holds when the request proves which patients it touches:
# its status is known and it names at least one patient id.
names_patients if {
	resource.patient_status == "known"
	some p in resource.patients
	is_string(p)
}

# linked_patients is the set of patient ids the user is (from
# user.patient_links, values "Patient/<id>").
linked_patients contains id if {
	some link in user.patient_links
	is_string(link)
	startswith(link, "Patient/")
	id := substring(link, count("Patient/"), -1)
	id != ""
	not contains(id, "/")
}

# self_ok holds for a self-only role when every patient the resource
# belongs to is the caller, or when the request is a FHIR read by id whose
# patient only the response shows.
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
# the caller.
own_records if {
	names_patients
	every p in resource.patients {
		p in linked_patients
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
