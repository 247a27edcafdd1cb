# The checks of data.json that policy.New runs at load.
package chartguard_test

import data.chartguard

errors_with(d) := errs if {
	errs := chartguard.load_errors with data.chartguard_data as d
}

test_shipped_data_has_no_load_errors if {
	count(chartguard.load_errors) == 0
}

test_missing_keys_keep_defaults if {
	count(errors_with({})) == 0
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
