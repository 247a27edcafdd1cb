# Grants: granted holds when something allows the request; missing_grants
# says why nothing did.
#
# Per-role permissions come from data.chartguard_data.roles, keyed by role
# then audit action (read, vread, search, history, create, update, patch,
# delete) to a list of resource types; "*" stands for every type in
# data.chartguard_data.clinical_types. The "operation" key lists FHIR
# operation names (without "$") instead of types. A user with several roles
# gets the union of their permissions.
package chartguard

import data.chartguard_data as cfg
import input.resource
import input.user

# authenticated holds when the caller has a verified subject.
authenticated if {
	is_string(user.sub)
	user.sub != ""
}

# user_roles is the set of the caller's roles (non-empty strings only).
user_roles contains role if {
	some role in user.roles
	is_string(role)
	role != ""
}

# FHIR and route requests are decided on the per-role table; capabilities
# and static content have their own rules.
is_data_request if {
	resource.kind in {"fhir", "route"}
	not is_capabilities
}

is_capabilities if {
	resource.kind == "fhir"
	resource.interaction == "capabilities"
}

granted if {
	is_capabilities
	authenticated
}

granted if {
	resource.kind == "static"
	authenticated
}

granted if {
	is_data_request
	some role in user_roles
	not role in self_only_roles
	role_permits(role)
}

granted if {
	is_data_request
	some role in user_roles
	role in self_only_roles
	role_permits(role)
	self_ok
}

# role_permits(role) holds when the per-role table lets role take the
# request's action on its resource type (or run its operation).
role_permits(role) if {
	resource.action != "operation"
	resource.type != "*"
	resource.type in cfg.roles[role][resource.action]
}

role_permits(role) if {
	resource.action != "operation"
	"*" in cfg.roles[role][resource.action]
	resource.type in cfg.clinical_types
}

role_permits(role) if {
	resource.action == "operation"
	resource.operation != ""
	resource.operation in cfg.roles[role].operation
}

# missing_grants says why each of the caller's roles did not grant; it is
# reported only when nothing allowed the request.
missing_grants contains sprintf("role %s may not %s", [role, what]) if {
	is_data_request
	some role in user_roles
	not role_permits(role)
}

missing_grants contains sprintf("role %s may only access the caller's own records", [role]) if {
	is_data_request
	some role in user_roles
	role_permits(role)
	role in self_only_roles
	not self_ok
}
