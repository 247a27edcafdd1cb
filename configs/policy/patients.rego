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
# belongs to is the caller.
#
# A read, vread or history of one resource by id names no patient until
# the EMR answers, so self_ok does not hold for it in the request phase and
# the patient role is denied. The response-phase issue will allow such
# requests once ChartGuard checks every resource of the response against
# this rule before any byte reaches the client.
self_ok if {
	names_patients
	every p in resource.patients {
		p in linked_patients
	}
}
