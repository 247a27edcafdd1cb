# Grants and denials.
#
# grants:         reasons to allow (each names what allowed it).
# denials:        hard denials; any one of them overrides every grant.
# missing_grants: why each of the caller's roles did not grant, reported
#                 only when nothing else allowed the request.
#
# Per-role permissions come from data.chartguard_data.roles, keyed by role
# then audit action (read, vread, search, history, create, update, patch,
# delete) to a list of resource types; "*" stands for every type in
# data.chartguard_data.clinical_types. The "operation" key lists FHIR
# operation names (without "$") instead of types. A user with several roles
# gets the union of their permissions.
package chartguard

import data.chartguard_data as cfg

known_actions := {"read", "vread", "search", "history", "create", "update", "patch", "delete", "operation"}

# Roles that may only touch their own records. "patient" is always one of
# them, so data that forgets the list cannot widen a patient's access.
self_only_roles := {"patient"} | {r | some r in cfg.self_only_roles}

# FHIR and route requests are decided on the per-role table; capabilities
# and static content have their own rules.
is_data_request if {
	kind in {"fhir", "route"}
	not is_capabilities
}

is_capabilities if {
	kind == "fhir"
	interaction == "capabilities"
}

# what describes the request in reasons, e.g. "read Observation".
what := sprintf("run %s on %s", [operation_label, type_label]) if action == "operation"
else := sprintf("%s %s", [action, type_label])

operation_label := sprintf("operation $%s", [operation]) if operation != ""
else := "an unnamed operation"

# ---------------------------------------------------------------- grants

grants contains "every authenticated caller may read the capability statement" if {
	is_capabilities
	authenticated
}

grants contains "every authenticated caller may load static content" if {
	kind == "static"
	authenticated
}

grants contains sprintf("role %s may %s", [role, what]) if {
	is_data_request
	some role in user_roles
	role_permits(role)
	self_check(role)
}

# role_permits(role) holds when the per-role table lets role take the
# request's action on its resource type (or run its operation).
role_permits(role) if {
	action != "operation"
	resource_type != "*"
	resource_type in cfg.roles[role][action]
}

role_permits(role) if {
	action != "operation"
	"*" in cfg.roles[role][action]
	is_clinical_type
}

role_permits(role) if {
	action == "operation"
	operation != ""
	operation in cfg.roles[role].operation
}

# self_check(role) holds when role is not limited to its own records, or
# when the resource is the caller's own.
self_check(role) if not role in self_only_roles

self_check(role) if {
	role in self_only_roles
	own_records
}

self_check(role) if {
	role in self_only_roles
	deferred_to_response
}

# own_records holds when the resource names patients and every one of them
# is linked to the caller.
own_records if {
	names_patients
	every p in patients {
		p in linked_patients
	}
}

names_patients if {
	patient_status == "known"
	count(patients) > 0
}

# Security: a read or vread by id names no patient until the EMR answers.
# Threat: a patient reads another patient's record by guessing its id.
# Choice: allow the request phase and let the response phase (which
# ChartGuard runs on every resource a response exposes, before any byte
# reaches the client; DESIGN.md "The request pipeline") decide on the
# resource's own patients. Accepted risk: the read reaches the EMR, which
# has no side effect; the response is dropped if it is not the caller's.
deferred_to_response if {
	phase == "request"
	patient_status == "unknown"
	interaction in {"read", "vread"}
}

# --------------------------------------------------------------- denials

denials contains "not authenticated" if not authenticated

denials contains "no role" if {
	is_data_request
	count(user_roles) == 0
}

denials contains sprintf("unsupported resource kind %q", [kind]) if {
	not kind in {"fhir", "route", "static"}
}

denials contains sprintf("unsupported action %q", [action]) if {
	is_data_request
	not action in known_actions
}

# Searches and histories over clinical data (or over every type) must name
# the patients they touch. data.chartguard_data.search_requires_patient
# switches this off; only an explicit false does, so missing data keeps it.
denials contains "search must name a patient" if {
	is_data_request
	action in {"search", "history"}
	bulk_scope
	not names_patients
	not cfg.search_requires_patient == false
}

denials contains "operation must name a patient" if {
	is_data_request
	action == "operation"
	bulk_scope
	not names_patients
}

bulk_scope if is_clinical_type

bulk_scope if resource_type == ""

# -------------------------------------------------------- missing grants

missing_grants contains sprintf("role %s may not %s", [role, what]) if {
	is_data_request
	some role in user_roles
	not role_permits(role)
}

missing_grants contains sprintf("role %s may only access the caller's own records", [role]) if {
	is_data_request
	some role in user_roles
	role_permits(role)
	not self_check(role)
}
