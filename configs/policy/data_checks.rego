# Checks of data.json, run once when the policy loads.
#
# ChartGuard refuses to load a policy whose load_errors is not empty
# (policy.New), so these checks cost nothing per request.
#
# Security: the rules read the data with lookups (cfg.roles[role][action]
# [type], cfg.self_only_roles[role], cfg.clinical_types[type]). In another
# shape, such as the lists of earlier versions, every lookup fails; for
# self_only_roles and clinical_types a failing lookup widens access (a
# self-only role is treated as an ordinary one, a clinical type needs no
# patient in searches). Threat: an operator keeps a data.json of the old
# shape. Choice: refuse to load it, naming what is wrong. Missing keys are
# allowed and keep their documented defaults.
package chartguard

import data.chartguard_data as cfg

load_errors contains sprintf("data.chartguard_data.%s must be an object", [key]) if {
	some key in ["clinical_types", "self_only_roles", "roles"]
	not is_object(object.get(cfg, key, {}))
}

load_errors contains sprintf("data.chartguard_data.%s.%s must be true", [key, name]) if {
	some key in ["clinical_types", "self_only_roles"]
	names := object.get(cfg, key, {})
	is_object(names)
	some name, value in names
	value != true
}

load_errors contains sprintf("data.chartguard_data.roles.%s must be an object", [role]) if {
	some role, perms in roles_table
	not is_object(perms)
}

load_errors contains sprintf("data.chartguard_data.roles.%s.%s must be an object", [role, action]) if {
	some role, perms in roles_table
	is_object(perms)
	some action, names in perms
	not is_object(names)
}

load_errors contains sprintf("data.chartguard_data.roles.%s.%s.%s must be true", [role, action, name]) if {
	some role, perms in roles_table
	is_object(perms)
	some action, names in perms
	is_object(names)
	some name, value in names
	value != true
}

# allow relies on the table listing known actions only.
load_errors contains sprintf("data.chartguard_data.roles.%s.%s: unknown action", [role, action]) if {
	some role, perms in roles_table
	is_object(perms)
	some action, _ in perms
	not action in {"read", "vread", "search", "history", "create", "update", "patch", "delete", "operation"}
}

# "*" stands for every clinical type, which an operation name is not.
load_errors contains sprintf("data.chartguard_data.roles.%s.operation may not list \"*\"", [role]) if {
	some role, perms in roles_table
	is_object(perms)
	is_object(perms.operation)
	"*" in object.keys(perms.operation)
}

load_errors contains "data.chartguard_data.search_requires_patient must be true or false" if {
	not is_boolean(object.get(cfg, "search_requires_patient", true))
}

roles_table := r if {
	r := object.get(cfg, "roles", {})
	is_object(r)
} else := {}
