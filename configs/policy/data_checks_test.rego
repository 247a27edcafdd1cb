# The checks of data.json that policy.New runs at load.
package chartguard_test

import data.chartguard

# required are the keys data.json must have, at their most permissive.
required := {
	"care_team_roles": {}, "relationship_types": {}, "restricted_labels": {},
	"very_restricted_labels": {}, "sensitive_labels": {},
	"psychotherapy_note_labels": {}, "vip_patients": {}, "employee_patients": {},
}

# errors_with(d) is the load errors of d with the required keys added.
errors_with(d) := errs if {
	errs := chartguard.load_errors with data.chartguard_data as object.union(required, d)
}

test_shipped_data_has_no_load_errors if {
	count(chartguard.load_errors) == 0
}

test_missing_keys_keep_defaults if {
	count(errors_with({})) == 0
}

test_care_team_and_label_sets_are_required if {
	# Missing, they would switch off the care-team and label rules.
	errs := chartguard.load_errors with data.chartguard_data as {}
	errs == {
		"data.chartguard_data.care_team_roles is required",
		"data.chartguard_data.relationship_types is required",
		"data.chartguard_data.restricted_labels is required",
		"data.chartguard_data.very_restricted_labels is required",
		"data.chartguard_data.sensitive_labels is required",
		"data.chartguard_data.psychotherapy_note_labels is required",
		"data.chartguard_data.vip_patients is required",
		"data.chartguard_data.employee_patients is required",
	}
	old := chartguard.load_errors with data.chartguard_data as json.remove(data.chartguard_data, ["very_restricted_labels"])
	old == {"data.chartguard_data.very_restricted_labels is required"}
}

# Missing, relationship_types would let a break-the-glass grant write the
# resources care relationships derive from, and psychotherapy_note_labels
# would release psychotherapy notes to the patient.
test_relationship_types_and_psychotherapy_note_labels_are_required if {
	every key in ["relationship_types", "psychotherapy_note_labels"] {
		errs := chartguard.load_errors with data.chartguard_data as json.remove(data.chartguard_data, [key])
		errs == {sprintf("data.chartguard_data.%s is required", [key])}
		shape := chartguard.load_errors with data.chartguard_data as object.union(data.chartguard_data, {key: ["x"]})
		shape == {sprintf("data.chartguard_data.%s must be an object", [key])}
	}
}

test_data_must_be_an_object if {
	every d in [null, [], "x"] {
		errs := chartguard.load_errors with data.chartguard_data as d
		"data.chartguard_data must be an object" in errs
		"data.chartguard_data.care_team_roles is required" in errs
	}
}

test_care_team_and_label_sets_are_lookup_objects if {
	errs := errors_with({
		"care_team_roles": ["physician"],
		"restricted_labels": {"R": "yes"},
		"very_restricted_labels": ["V"],
	})
	errs == {
		"data.chartguard_data.care_team_roles must be an object",
		"data.chartguard_data.restricted_labels.R must be true",
		"data.chartguard_data.very_restricted_labels must be an object",
	}
}

test_care_teams_shape if {
	errors_with({"care_teams": []}) == {"data.chartguard_data.care_teams must be an object"}
	errors_with({"care_teams": {"Practitioner/pr1": ["p1"]}}) == {"data.chartguard_data.care_teams: 1 entries are not objects whose values are all true"}
	errors_with({"care_teams": {"Practitioner/pr1": {"p1": 1}, "Practitioner/pr2": {"p2": true, "p3": "yes"}, "Practitioner/pr3": {}}}) == {"data.chartguard_data.care_teams: 2 entries are not objects whose values are all true"}
	count(errors_with({"care_teams": {"Practitioner/pr1": {"p1": true}}})) == 0
}

test_staff_patient_links_shape if {
	errors_with({"staff_patient_links": []}) == {"data.chartguard_data.staff_patient_links must be an object"}
	errors_with({"staff_patient_links": {"Practitioner/pr8": ["p8"], "Practitioner/pr9": {"p9": "yes"}}}) == {"data.chartguard_data.staff_patient_links: 2 entries are not objects whose values are all true"}
	count(errors_with({"staff_patient_links": {"Practitioner/pr8": {"p8": true}}})) == 0
}

test_lists_of_earlier_versions_are_refused if {
	errs := errors_with({
		"clinical_types": ["Observation"],
		"self_only_roles": ["patient"],
		"roles": {"nurse": {"read": ["Observation"]}},
	})
	errs == {
		"data.chartguard_data.clinical_types must be an object",
		"data.chartguard_data.self_only_roles must be an object",
		"data.chartguard_data.roles.nurse.read must be an object",
	}
}

test_values_must_be_true if {
	errs := errors_with({
		"clinical_types": {"Observation": "yes"},
		"self_only_roles": {"patient": 1},
		"roles": {"nurse": {"read": {"Observation": false}}},
	})
	errs == {
		"data.chartguard_data.clinical_types.Observation must be true",
		"data.chartguard_data.self_only_roles.patient must be true",
		"data.chartguard_data.roles.nurse.read.Observation must be true",
	}
}

test_roles_table_shape if {
	errors_with({"roles": []}) == {"data.chartguard_data.roles must be an object"}
	errors_with({"roles": {"nurse": ["read"]}}) == {"data.chartguard_data.roles.nurse must be an object"}
}

test_unknown_actions_are_refused if {
	errors_with({"roles": {"nurse": {"reed": {"Observation": true}}}}) == {"data.chartguard_data.roles.nurse.reed: unknown action"}
}

test_wildcard_is_no_operation if {
	errors_with({"roles": {"nurse": {"operation": {"*": true}}}}) == {`data.chartguard_data.roles.nurse.operation may not list "*"`}
}

test_search_flag_must_be_boolean if {
	errors_with({"search_requires_patient": "no"}) == {"data.chartguard_data.search_requires_patient must be true or false"}
}

test_new_settings_shapes if {
	errors_with({"vip_patients": ["p7"]}) == {"data.chartguard_data.vip_patients must be an object"}
	errors_with({"employee_patients": {"p8": "yes"}}) == {"data.chartguard_data.employee_patients: 1 entries are not true; every value must be true"}
	errors_with({"vip_patients": {"p7": 1, "p8": false, "p9": true}}) == {"data.chartguard_data.vip_patients: 2 entries are not true; every value must be true"}
	errors_with({"break_glass_roles": {"nurse": ["BTG"]}}) == {"data.chartguard_data.break_glass_roles.nurse must be an object"}
	errors_with({"break_glass_roles": {"nurse": {"BTG": 1}}}) == {"data.chartguard_data.break_glass_roles.nurse.BTG must be true"}
	errors_with({"break_glass_roles": []}) == {"data.chartguard_data.break_glass_roles must be an object"}
	errors_with({"redact": "Patient.identifier"}) == {"data.chartguard_data.redact must be a list of strings"}
	errors_with({"redact": [1]}) == {"data.chartguard_data.redact must be a list of strings"}
	count(errors_with({"redact": ["Patient.telecom"]})) == 0
}

test_numbers_must_be_whole if {
	every key in ["encounter_window_days", "break_glass_mfa_within_s", "export_mfa_within_s", "search_max_count"] {
		every bad in ["30", -1, 1.5, null] {
			errors_with({key: bad}) == {sprintf("data.chartguard_data.%s must be a whole number of at least 0", [key])}
		}
		count(errors_with({key: 0})) == 0
	}
	every bad in [0, "10", 2.5] {
		errors_with({"max_distinct_patients": bad}) == {"data.chartguard_data.max_distinct_patients must be a whole number above 0"}
	}
	count(errors_with({"max_distinct_patients": 50})) == 0
}
