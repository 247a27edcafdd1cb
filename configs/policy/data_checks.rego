# Checks of data.json, run once when the policy loads.
#
# ChartGuard refuses to load a policy whose load_errors is not empty
# (policy.New), so these checks cost nothing per request.
#
# Security: the rules read the data with lookups (cfg.roles[role][action]
# [type], cfg.self_only_roles[role], cfg.vip_patients[p], ...). In another
# shape, such as a list where an object belongs, every lookup fails; for
# self_only_roles, clinical_types, care_team_roles, relationship_types,
# the label sets and the VIP and employee lists a failing lookup widens
# access (a self-only role is treated as an ordinary one, a clinician
# needs no care relationship or writes one under break-the-glass, a label
# or a VIP restricts nothing). Threat: an operator keeps a data.json
# of an old shape, or types a list by hand. Choice: refuse to load it,
# naming what is wrong. The sets whose absence would widen access must be
# present (an empty object is a deliberate choice; a missing key is an old
# file); other missing keys keep their documented defaults.
package chartguard

import data.chartguard_data as cfg

# lookup_sets are the lists of names, each an object of true values.
lookup_sets := [
	"clinical_types", "self_only_roles", "care_team_roles",
	"relationship_types", "restricted_labels", "very_restricted_labels",
	"sensitive_labels", "psychotherapy_note_labels", "vip_patients",
	"employee_patients", "sensitivity_exempt_types", "export_purposes",
	"redact_exempt_roles",
]

# required_sets widen access when missing.
required_sets := [
	"care_team_roles", "relationship_types", "restricted_labels",
	"very_restricted_labels", "sensitive_labels",
	"psychotherapy_note_labels", "vip_patients", "employee_patients",
]

# counts are the settings that are whole numbers of at least 0 (days,
# seconds, entries), and positive_counts those that must be above 0.
counts := ["encounter_window_days", "break_glass_mfa_within_s", "export_mfa_within_s", "search_max_count"]

positive_counts := ["max_distinct_patients"]

load_errors contains sprintf("data.chartguard_data.%s is required", [key]) if {
	some key in required_sets
	not has_key(key)
}

load_errors contains sprintf("data.chartguard_data.%s must be an object", [key]) if {
	some key in array.concat(lookup_sets, ["roles", "care_teams", "staff_patient_links", "break_glass_roles"])
	not is_object(object.get(settings, key, {}))
}

# Messages name the entry at fault, except in the tables keyed by patient
# and user ids (id_keyed), where they count the entries: ChartGuard logs
# these messages and writes them to the audit log.
id_keyed := {"vip_patients", "employee_patients", "care_teams", "staff_patient_links"}

load_errors contains sprintf("data.chartguard_data.%s.%s must be true", [key, name]) if {
	some key in lookup_sets
	not key in id_keyed
	some name, value in table(key)
	value != true
}

load_errors contains sprintf("data.chartguard_data.%s: %d entries are not true; every value must be true", [key, n]) if {
	some key in lookup_sets
	key in id_keyed
	n := count([name | some name, value in table(key); value != true])
	n > 0
}

# break_glass_roles maps a role to an object of reason codes, each true,
# and care_teams and staff_patient_links a fhir_user to an object of
# patient ids, each true.
load_errors contains sprintf("data.chartguard_data.break_glass_roles.%s must be an object", [role]) if {
	some role, codes in table("break_glass_roles")
	not is_object(codes)
}

load_errors contains sprintf("data.chartguard_data.break_glass_roles.%s.%s must be true", [role, code]) if {
	some role, codes in table("break_glass_roles")
	is_object(codes)
	some code, value in codes
	value != true
}

load_errors contains sprintf("data.chartguard_data.%s: %d entries are not objects whose values are all true", [key, n]) if {
	some key in ["care_teams", "staff_patient_links"]
	n := count([user | some user, patients in table(key); not true_set(patients)])
	n > 0
}

# true_set(x) holds when x is an object whose values are all true.
true_set(x) if {
	is_object(x)
	every value in x {
		value == true
	}
}

load_errors contains sprintf("data.chartguard_data.roles.%s must be an object", [role]) if {
	some role, perms in table("roles")
	not is_object(perms)
}

load_errors contains sprintf("data.chartguard_data.roles.%s.%s must be an object", [role, action]) if {
	some role, perms in table("roles")
	is_object(perms)
	some action, names in perms
	not is_object(names)
}

load_errors contains sprintf("data.chartguard_data.roles.%s.%s.%s must be true", [role, action, name]) if {
	some role, perms in table("roles")
	is_object(perms)
	some action, names in perms
	is_object(names)
	some name, value in names
	value != true
}

# allowed relies on the table listing known actions only.
load_errors contains sprintf("data.chartguard_data.roles.%s.%s: unknown action", [role, action]) if {
	some role, perms in table("roles")
	is_object(perms)
	some action, _ in perms
	not action in known_actions
}

# "*" stands for every clinical type, which an operation name is not.
load_errors contains sprintf("data.chartguard_data.roles.%s.operation may not list \"*\"", [role]) if {
	some role, perms in table("roles")
	is_object(perms)
	is_object(perms.operation)
	"*" in object.keys(perms.operation)
}

load_errors contains "data.chartguard_data.search_requires_patient must be true or false" if {
	not is_boolean(object.get(settings, "search_requires_patient", true))
}

load_errors contains sprintf("data.chartguard_data.%s must be a whole number of at least 0", [key]) if {
	some key in counts
	not is_count(object.get(settings, key, 0))
}

load_errors contains sprintf("data.chartguard_data.%s must be a whole number above 0", [key]) if {
	some key in positive_counts
	n := object.get(settings, key, 1)
	not positive_count(n)
}

load_errors contains "data.chartguard_data.redact must be a list of strings" if {
	paths := object.get(settings, "redact", [])
	not strings_array(paths)
}

strings_array(x) if {
	is_array(x)
	every s in x {
		is_string(s)
	}
}

is_count(n) if {
	is_number(n)
	n >= 0
	n == floor(n)
}

positive_count(n) if {
	is_count(n)
	n > 0
}

# settings is data.chartguard_data if it is an object, else empty.
settings := cfg if is_object(cfg)

else := {}

load_errors contains "data.chartguard_data must be an object" if not is_object(cfg)

# table(key) is the object at key, or empty if it is not an object.
table(key) := t if {
	t := object.get(settings, key, {})
	is_object(t)
} else := {}

has_key(key) if _ = settings[key]
