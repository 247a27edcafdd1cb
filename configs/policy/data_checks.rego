# Checks of data.json, run once when the policy loads.
#
# ChartGuard refuses to load a policy whose load_errors is not empty
# (policy.New), so these checks cost nothing per request.
#
# Security: the rules read the data with lookups (cfg.roles[role][action]
# [type], cfg.self_only_roles[role], cfg.clinical_types[type],
# cfg.care_team_roles[role], cfg.restricted_labels[label], ...). In another
# shape, such as the lists of earlier versions, every lookup fails; for
# self_only_roles, clinical_types, care_team_roles and the label sets a
# failing lookup widens access (a self-only role is treated as an ordinary
# one, a clinical type needs no patient in searches, a clinician needs no
# care relationship, a label restricts nothing). Threat: an operator keeps
# a data.json of an old shape. Choice: refuse to load it, naming what is
# wrong. The care-team and label sets did not exist before, so they must be
# present (an empty object is a deliberate choice; a missing key is an old
# file); other missing keys are allowed and keep their documented defaults.
package chartguard

import data.chartguard_data as cfg

# lookup_sets are the lists of names, each an object of true values.
lookup_sets := ["clinical_types", "self_only_roles", "care_team_roles", "restricted_labels", "very_restricted_labels"]

load_errors contains sprintf("data.chartguard_data.%s is required", [key]) if {
	some key in ["care_team_roles", "restricted_labels", "very_restricted_labels"]
	not has_key(key)
}

load_errors contains sprintf("data.chartguard_data.%s must be an object", [key]) if {
	some key in array.concat(lookup_sets, ["roles", "care_teams"])
	not is_object(object.get(settings, key, {}))
}

load_errors contains sprintf("data.chartguard_data.%s.%s must be true", [key, name]) if {
	some key in lookup_sets
	names := object.get(settings, key, {})
	is_object(names)
	some name, value in names
	value != true
}

# care_teams maps a fhir_user to an object of patient ids, each true.
load_errors contains sprintf("data.chartguard_data.care_teams.%s must be an object", [member]) if {
	some member, patients in care_teams_table
	not is_object(patients)
}

load_errors contains sprintf("data.chartguard_data.care_teams.%s.%s must be true", [member, patient]) if {
	some member, patients in care_teams_table
	is_object(patients)
	some patient, value in patients
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
	not is_boolean(object.get(settings, "search_requires_patient", true))
}

roles_table := r if {
	r := object.get(settings, "roles", {})
	is_object(r)
} else := {}

# settings is data.chartguard_data if it is an object, else empty.
settings := cfg if is_object(cfg)

else := {}

load_errors contains "data.chartguard_data must be an object" if not is_object(cfg)

care_teams_table := t if {
	t := object.get(settings, "care_teams", {})
	is_object(t)
} else := {}

has_key(key) if _ = settings[key]
