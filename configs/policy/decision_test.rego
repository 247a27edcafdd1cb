# decision restates granted and denials (see its comment in
# chartguard.rego). These tests check that the two agree on every
# combination of the inputs below: a policy change that touches one and
# not the other fails here.
package chartguard_test

import data.chartguard

# Resource fields, by dimension. Each test keeps its product to a few
# hundred inputs: `opa test` gives a test 5 seconds.
kinds := [
	{"kind": "fhir", "interaction": "read"},
	{"kind": "fhir", "interaction": "capabilities"},
	{"kind": "fhir", "interaction": "search-type"},
	{"kind": "fhir", "interaction": "history-instance"},
	{"kind": "route", "interaction": "read"},
]

response_kinds := [
	{"kind": "fhir", "interaction": "read"},
	{"kind": "fhir", "interaction": "search-type"},
	{"kind": "fhir", "interaction": "history-instance"},
]

odd_kinds := [
	{"kind": "route", "interaction": "capabilities"},
	{"kind": "static", "interaction": "read"},
	{"kind": "proxy", "interaction": "read"},
	{"interaction": "read"},
]

actions := [
	{"action": "read"},
	{"action": "search"},
	{"action": "history"},
	{"action": "create"},
	{"action": "operation", "operation": "everything"},
	{"action": "purge"},
]

odd_actions := [
	{"action": "read"},
	{"action": "search"},
	{"action": "operation", "operation": "export"},
	{},
]

types := [{"type": "Observation"}, {"type": "Practitioner"}, {"type": "*"}]

response_types := [{"type": "Observation"}, {"type": "Practitioner"}, {"type": "OperationOutcome"}, {"type": "Bundle"}]

odd_types := [{"type": "Observation"}, {"type": ""}, {}]

# p1 is on the care team of Practitioner/pr1 (data.json), p9 is not.
patient_sets := [
	{"patient_status": "known", "patients": ["p9"]},
	{"patient_status": "unknown", "patients": []},
	{"patient_status": "known", "patients": [1]},
	{"patient_status": "known", "patients": ["p1"]},
]

response_patient_sets := [
	{"patient_status": "known", "patients": ["p9"]},
	{"patient_status": "unknown", "patients": []},
	{"patient_status": "none", "patients": []},
	{"patient_status": "known", "patients": ["p1"]},
]

physician := {"sub": "u1", "roles": ["physician"], "fhir_user": "Practitioner/pr1"}

patient := {"sub": "u1", "roles": ["patient"], "patient_links": ["Patient/p9"]}

users := [
	physician,
	{"sub": "u1", "roles": ["nurse"]},
	{"sub": "u1", "roles": ["nurse"], "fhir_user": "Practitioner/pr1"},
	{"sub": "u1", "roles": ["physician", "lab"], "fhir_user": "Practitioner/pr2"},
	patient,
	{"sub": "u1", "roles": ["billing", "lab"]},
	{"sub": "u1", "roles": ["him", "patient"], "patient_links": ["Patient/p9"]},
	{"sub": "u1", "roles": ["", 7, "janitor"]},
	{"sub": "u1", "roles": []},
	{"sub": "", "roles": ["physician"]},
	{"sub": 1, "roles": ["physician"]},
	{"roles": ["physician"]},
]

# Resources for the tests that vary the user or the data.
some_resources := [
	{"kind": "fhir", "interaction": "read", "action": "read", "type": "Observation", "patient_status": "known", "patients": ["p9"]},
	{"kind": "fhir", "interaction": "read", "action": "read", "type": "Observation", "patient_status": "known", "patients": ["p1"]},
	{"kind": "fhir", "interaction": "search-type", "action": "search", "type": "Observation", "patient_status": "unknown", "patients": []},
	{"kind": "fhir", "interaction": "search-type", "action": "search", "type": "Claim", "patient_status": "unknown", "patients": []},
	{"kind": "fhir", "interaction": "search-type", "action": "search", "type": "Practitioner", "patient_status": "none", "patients": []},
	{"kind": "fhir", "interaction": "delete", "action": "delete", "type": "Observation", "patient_status": "known", "patients": ["p9"]},
	{"kind": "fhir", "interaction": "create", "action": "create", "type": "Observation", "patient_status": "unknown", "patients": []},
	{"kind": "fhir", "interaction": "read", "action": "read", "type": "Observation", "patient_status": "unknown", "patients": []},
	{"kind": "fhir", "interaction": "capabilities", "action": "read", "type": "", "patient_status": "none", "patients": []},
	{"kind": "static", "action": "read", "type": "", "patient_status": "none", "patients": []},
]

# agrees(x) holds when the decision for input x allows exactly when a
# grant applies and no denial does, and gives reasons exactly when it
# denies.
agrees(x) if {
	d := chartguard.decision with input as x
	expected := expected_allow with input as x
	d.allow == expected
	count(d.reasons) == 0 == expected
}

expected_allow if {
	chartguard.granted
	count(chartguard.denials) == 0
} else := false

disagreements(inputs) := [x | some x in inputs; not agrees(x)]

test_decision_agrees_on_resources if {
	bad := disagreements([{"user": u, "resource": object.union_n([k, a, t, p, {"phase": "request"}])} |
		some k in kinds
		some a in actions
		some t in types
		some p in patient_sets
		some u in [physician, patient]
	])
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_response_resources if {
	bad := disagreements([{"user": u, "resource": object.union_n([k, a, t, p, {"phase": "response"}])} |
		some k in response_kinds
		some a in actions
		some t in response_types
		some p in response_patient_sets
		some u in [physician, patient]
	])
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_odd_resources if {
	bad := disagreements([{"user": physician, "resource": object.union_n([k, a, t, p])} |
		some k in odd_kinds
		some a in odd_actions
		some t in odd_types
		some p in [patient_sets[0], patient_sets[1]]
	])
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_users if {
	bad := disagreements([{"user": u, "resource": object.union(r, ph)} |
		some u in users
		some r in some_resources
		some ph in [{"phase": "request"}, {"phase": "response"}, {}]
	])
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_other_data if {
	inputs := [{"user": u, "resource": r} | some u in [users[0], users[1], users[2], users[4], users[6]]; some r in some_resources]
	nurse_self_only := object.union(data.chartguard_data, {"self_only_roles": {"nurse": true}})
	patient_rule := object.union(data.chartguard_data, {"search_requires_patient": true})
	no_care_teams := object.union(data.chartguard_data, {"care_team_roles": {}, "care_teams": {}})
	bad1 := disagreements(inputs) with data.chartguard_data as nurse_self_only
	bad2 := disagreements(inputs) with data.chartguard_data as patient_rule
	bad3 := disagreements(inputs) with data.chartguard_data as no_care_teams
	bad := array.concat(array.concat(bad1, bad2), bad3)
	print("inputs where decision disagrees:", bad)
	bad == []
}

# Who asks: the user and the care relationships ChartGuard found.
askers := [
	{"user": physician},
	{"user": {"sub": "u1", "roles": ["nurse"], "fhir_user": "Practitioner/pr7"}},
	{"user": {"sub": "u1", "roles": ["physician"], "fhir_user": "Practitioner/pr3"}, "relationship": {"p9": {"care_team": true}}},
	{"user": {"sub": "u1", "roles": ["physician"]}, "relationship": {"p1": {"care_team": false}}},
	{"user": {"sub": "u1", "roles": ["lab"]}},
	{"user": patient},
	{"user": {"sub": "u1", "roles": ["him", "patient"], "patient_links": ["Patient/p9"]}},
]

label_sets := [{"labels": []}, {"labels": ["R"]}, {"labels": ["PSY", "V"]}, {"labels": null}]

labelled_inputs(phase, action, interaction) := [object.union(who, {"resource": object.union_n([k, t, p, l])}) |
	k := {"kind": "fhir", "phase": phase, "action": action, "interaction": interaction}
	some who in askers
	some t in [{"type": "Observation"}, {"type": "Practitioner"}]
	some p in [
		{"patient_status": "known", "patients": ["p1"]},
		{"patient_status": "known", "patients": ["p9"]},
		{"patient_status": "known", "patients": ["p1", "p9"]},
		{"patient_status": "unknown", "patients": []},
		{"patient_status": "none", "patients": []},
	]
	some l in label_sets
]

test_decision_agrees_on_labels_and_care_teams_in_read_requests if {
	bad := disagreements(labelled_inputs("request", "read", "read"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_labels_and_care_teams_in_search_requests if {
	bad := disagreements(labelled_inputs("request", "search", "search-type"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_labels_and_care_teams_in_read_responses if {
	bad := disagreements(labelled_inputs("response", "read", "read"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_labels_and_care_teams_in_search_responses if {
	bad := disagreements(labelled_inputs("response", "search", "search-type"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_labelled_inputs_give_both_outcomes if {
	inputs := labelled_inputs("response", "read", "read")
	allowed := [x | some x in inputs; chartguard.decision.allow with input as x]
	count(allowed) > 10
	count(inputs) - count(allowed) > 10
}
