# Patients: which patients a resource belongs to, and the self-only rule
# for the patient role.
package chartguard

import data.chartguard_data as cfg
import input.resource
import input.user

# Roles that may only touch their own records. "patient" is always one of
# them, so data that forgets the list cannot widen a patient's access.
self_only_roles := {"patient"} | {r | some r in cfg.self_only_roles}

# patients is the set of patient ids the resource belongs to.
patients contains p if {
	some p in resource.patients
	is_string(p)
}

# names_patients holds when the request proves which patients it touches.
names_patients if {
	resource.patient_status == "known"
	count(patients) > 0
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

# self_ok holds for a self-only role when the resource is the caller's own,
# or when the decision is deferred to the response phase.
self_ok if {
	names_patients
	every p in resource.patients {
		p in linked_patients
	}
}

# Security: a read, vread or history of one resource by id names no
# patient until the EMR answers.
# Threat: a patient reads another patient's record by guessing its id.
# Choice: allow the request phase and let the response phase (which
# ChartGuard runs on every resource a response exposes, before any byte
# reaches the client; DESIGN.md "The request pipeline") decide on the
# resource's own patients. Accepted risk: the read reaches the EMR, which
# has no side effect; the response is dropped if it is not the caller's.
self_ok if {
	resource.phase == "request"
	resource.patient_status == "unknown"
	resource.interaction in {"read", "vread", "history-instance"}
}
