# SMART on FHIR scopes: a bearer token's scopes narrow what the caller's
# roles allow; they never widen it.
#
# A data request on a bearer token (input.token.kind "bearer") needs one
# scope in input.token.scopes that covers it:
#
#	<context>/<type>.<permissions>
#
#   - context: patient, user or system. A patient/ scope covers only the
#     patient in context: input.token.launch_patient when the token has
#     one, else the caller's linked patients (patients.rego).
#   - type: the resource type, or * for every type.
#   - permissions: SMART v2 letters in the order c r u d s (create, read,
#     update, delete, search; e.g. "rs", "cruds"), or SMART v1 read (= rs),
#     write (= cud) or *. A scope with a query (v2 granular scopes such as
#     "patient/Observation.rs?category=laboratory") is not understood and
#     covers nothing.
#
# Actions need: read, vread r; history of one resource r, other histories
# s; search s; create c; update, patch u; delete d; operations r; export r
# and s. A session token (ChartGuard's own browser session) has no scope
# constraint. Any other token kind, or none, is refused.
package chartguard

import input.resource
import input.token

# scopes_ok holds when the credential's scopes cover the request.
default scopes_ok := false

scopes_ok if {
	token.kind == "session"
} else if {
	token.kind == "bearer"
	some scope in token.scopes
	scope_covers(scope)
}

# scope_covers(scope) holds when scope covers the request.
scope_covers(scope) if {
	is_string(scope)
	[context, rest] := split(scope, "/")
	[type, perms] := split(rest, ".")
	scope_types[type]
	granted := scope_permissions(perms)
	every letter in needed_permissions {
		letter in granted
	}
	context_covers(context)
}

# scope_types are the scope types that name the request's type.
scope_types contains "*"

scope_types contains resource.type if is_string(resource.type)

scope_permissions("read") := {"r", "s"}

scope_permissions("write") := {"c", "u", "d"}

scope_permissions("*") := {"c", "r", "u", "d", "s"}

scope_permissions(perms) := {letter | some letter in split(perms, "")} if {
	regex.match(`^c?r?u?d?s?$`, perms)
	perms != ""
}

# needed_permissions are the SMART v2 letters the request needs.
needed_permissions := {"r"} if {
	resource.action in {"read", "vread", "operation"}
} else := {"r"} if {
	resource.action == "history"
	resource.interaction == "history-instance"
} else := {"s"} if {
	resource.action in {"search", "history"}
} else := {"c"} if {
	resource.action == "create"
} else := {"u"} if {
	resource.action in {"update", "patch"}
} else := {"d"} if {
	resource.action == "delete"
} else := {"r", "s"} if {
	resource.action == "export"
}

# context_covers(context) holds when a scope of this context may reach the
# resource's patients.
context_covers(context) if context in {"user", "system"}

context_covers("patient") if {
	names_patients
	every p in resource.patients {
		scope_patients[p]
	}
}

context_covers("patient") if patients_pending

context_covers("patient") if {
	resource.patient_status == "none"
	resource.patients == []
}

# scope_patients are the patients a patient/ scope may reach.
scope_patients := {token.launch_patient} if {
	is_string(token.launch_patient)
	token.launch_patient != ""
} else := linked_patients
