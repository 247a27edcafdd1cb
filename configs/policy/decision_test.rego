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
# grant applies and no denial does, gives reasons exactly when it denies,
# and carries the obligations an allow should.
#
# Inputs without a token, session or request get the session token, MFA
# state and time of base, so that the tests vary what they name.
agrees(input_part) if {
	x := object.union({"token": base.token, "session": base.session, "request": base.request}, input_part)
	consistent with input as x
}

# consistent is agrees for the current input, under one `with`, so that
# the rules decision, granted and denials share are evaluated once.
consistent if {
	d := chartguard.decision
	expected := expected_allow
	d.allow == expected
	count(d.reasons) == 0 == expected
	same_obligations(d)
	same_denial(d)
}

# same_denial(d) holds when a deny is the one general_denial computes,
# whichever body of decision gave it (fast_denial restates the commonest
# ones): the same reasons, break-the-glass offer, step-up and tags.
same_denial(d) if d.allow

same_denial(d) if {
	not d.allow
	d == chartguard.general_denial
}

# same_obligations(d) holds when an allowed data request carries the
# obligations and step-up that obligations.rego computes, whichever body
# of decision allowed it (the fast ones restate them as constants).
same_obligations(_) if not chartguard.allowed

same_obligations(d) if {
	chartguard.allowed
	d.obligations == chartguard.obligations
	d.require_mfa_within_s == chartguard.allow_mfa_within_s
}

expected_allow if {
	chartguard.granted
	count(chartguard.denials) == 0
} else := false

disagreements(inputs) := [x | some x in inputs; not agrees(x)]

# The products below are split into tests of at most about 150 inputs, so
# that each stays well inside the 5 s that `opa test` (and a policy load
# that runs the tests) gives a test, on a busy machine and under -race.
request_resources(u, acts) := [{"user": u, "resource": object.union_n([k, a, t, p, {"phase": "request"}])} |
	some k in kinds
	some a in acts
	some t in types
	some p in patient_sets
]

response_resources(u, acts) := [{"user": u, "resource": object.union_n([k, a, t, p, {"phase": "response"}])} |
	some k in response_kinds
	some a in acts
	some t in response_types
	some p in response_patient_sets
]

# first_actions and last_actions halve actions.
first_actions := array.slice(actions, 0, 3)

last_actions := array.slice(actions, 3, 6)

test_decision_agrees_on_reads_for_a_physician if {
	bad := disagreements(request_resources(physician, first_actions))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_writes_for_a_physician if {
	bad := disagreements(request_resources(physician, last_actions))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_reads_for_a_patient if {
	bad := disagreements(request_resources(patient, first_actions))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_writes_for_a_patient if {
	bad := disagreements(request_resources(patient, last_actions))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_response_reads_for_a_physician if {
	bad := disagreements(response_resources(physician, first_actions))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_response_writes_for_a_physician if {
	bad := disagreements(response_resources(physician, last_actions))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_response_reads_for_a_patient if {
	bad := disagreements(response_resources(patient, first_actions))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_response_writes_for_a_patient if {
	bad := disagreements(response_resources(patient, last_actions))
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

user_inputs(us) := [{"user": u, "resource": object.union(r, ph)} |
	some u in us
	some r in some_resources
	some ph in [{"phase": "request"}, {"phase": "response"}, {}]
]

test_decision_agrees_on_users if {
	bad := disagreements(user_inputs(array.slice(users, 0, 4)))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_more_users if {
	bad := disagreements(user_inputs(array.slice(users, 4, 8)))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_odd_users if {
	bad := disagreements(user_inputs(array.slice(users, 8, count(users))))
	print("inputs where decision disagrees:", bad)
	bad == []
}

other_data_inputs := [{"user": u, "resource": r} | some u in [users[0], users[1], users[2], users[4], users[6]]; some r in some_resources]

test_decision_agrees_with_a_self_only_nurse if {
	bad := disagreements(other_data_inputs) with data.chartguard_data.self_only_roles as {"nurse": true}
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_when_searches_must_name_patients if {
	bad := disagreements(other_data_inputs) with data.chartguard_data.search_requires_patient as true
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_without_care_teams if {
	bad := disagreements(other_data_inputs) with data.chartguard_data.care_team_roles as {}
		with data.chartguard_data.care_teams as {}
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
	{"user": {"sub": "u1", "roles": ["physician"], "fhir_user": "Practitioner/pr3"}, "session": {"mfa": true, "break_glass": [{"patient": "p9", "expires_at": "2026-11-25T12:00:00Z"}]}},
	{"user": physician, "token": {"kind": "bearer", "scopes": ["user/Observation.rs"]}},
	{"user": {"sub": "u1", "roles": ["nurse"], "fhir_user": "Patient/p9"}},
]

label_sets := [{"labels": []}, {"labels": ["R"]}, {"labels": ["PSY", "V"]}, {"labels": null}]

# asker_groups split askers for the tests below.
asker_groups := [array.slice(askers, 0, 3), array.slice(askers, 3, 6), array.slice(askers, 6, count(askers))]

labelled_inputs_of(who_asks, phase, action, interaction) := [object.union(who, {"resource": object.union_n([k, t, p, l])}) |
	k := {"kind": "fhir", "phase": phase, "action": action, "interaction": interaction}
	some who in who_asks
	some t in [{"type": "Observation"}, {"type": "Practitioner"}]
	some p in [
		{"patient_status": "known", "patients": ["p1"]},
		{"patient_status": "known", "patients": ["p9"]},
		{"patient_status": "known", "patients": ["p1", "p9"]},
		{"patient_status": "known", "patients": ["p8"]},
		{"patient_status": "unknown", "patients": []},
		{"patient_status": "none", "patients": []},
	]
	some l in fast_label_sets
]

test_decision_agrees_on_labels_and_care_teams_in_read_requests_1 if {
	bad := disagreements(labelled_inputs_of(asker_groups[0], "request", "read", "read"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_labels_and_care_teams_in_read_requests_2 if {
	bad := disagreements(labelled_inputs_of(asker_groups[1], "request", "read", "read"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_labels_and_care_teams_in_read_requests_3 if {
	bad := disagreements(labelled_inputs_of(asker_groups[2], "request", "read", "read"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_labels_and_care_teams_in_search_requests_1 if {
	bad := disagreements(labelled_inputs_of(asker_groups[0], "request", "search", "search-type"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_labels_and_care_teams_in_search_requests_2 if {
	bad := disagreements(labelled_inputs_of(asker_groups[1], "request", "search", "search-type"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_labels_and_care_teams_in_search_requests_3 if {
	bad := disagreements(labelled_inputs_of(asker_groups[2], "request", "search", "search-type"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_labels_and_care_teams_in_read_responses_1 if {
	bad := disagreements(labelled_inputs_of(asker_groups[0], "response", "read", "read"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_labels_and_care_teams_in_read_responses_2 if {
	bad := disagreements(labelled_inputs_of(asker_groups[1], "response", "read", "read"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_labels_and_care_teams_in_read_responses_3 if {
	bad := disagreements(labelled_inputs_of(asker_groups[2], "response", "read", "read"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_labels_and_care_teams_in_search_responses_1 if {
	bad := disagreements(labelled_inputs_of(asker_groups[0], "response", "search", "search-type"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_labels_and_care_teams_in_search_responses_2 if {
	bad := disagreements(labelled_inputs_of(asker_groups[1], "response", "search", "search-type"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_labels_and_care_teams_in_search_responses_3 if {
	bad := disagreements(labelled_inputs_of(asker_groups[2], "response", "search", "search-type"))
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_labelled_inputs_give_both_outcomes if {
	inputs := labelled_inputs_of(asker_groups[0], "response", "read", "read")
	allowed := [x | some x in inputs; chartguard.decision.allow with input as object.union({"token": base.token}, x)]
	count(allowed) > 10
	count(inputs) - count(allowed) > 10
}

# Credentials and labels the fast bodies of decision take or leave to the
# general path: every one must be decided as the general path decides it.
tokens := [
	{"kind": "session"},
	{"kind": "bearer", "scopes": ["user/*.rs"]},
	{"kind": "bearer", "scopes": ["openid", "system/*.read"]},
	{"kind": "bearer", "scopes": ["user/*.s"]},
	{"kind": "bearer", "scopes": ["user/*.c"]},
	{"kind": "bearer", "scopes": ["user/Observation.rs"]},
	{"kind": "bearer", "scopes": ["patient/*.rs"], "launch_patient": "p1"},
	{"kind": "bearer", "scopes": ["patient/*.rs"], "launch_patient": "p9"},
	{"kind": "bearer", "scopes": []},
	{"kind": "bearer"},
	{"kind": "other", "scopes": ["user/*.rs"]},
]

fast_label_sets := [
	{"labels": []},
	{"labels": ["N"]},
	{"labels": ["N", "R"]},
	{"labels": ["PSY"]},
	{"labels": ["V"]},
	{"labels": [7]},
	{"labels": "N"},
]

test_decision_agrees_on_tokens if {
	bad := disagreements([{"user": physician, "token": t, "resource": object.union(r, ph)} |
		some t in tokens
		some r in some_resources
		some ph in [{"phase": "request"}, {"phase": "response"}]
	])
	print("inputs where decision disagrees:", bad)
	bad == []
}

test_decision_agrees_on_labels if {
	bad := disagreements([{"user": u, "resource": object.union_n([r, l, {"phase": "response"}])} |
		some u in [physician, users[2], patient]
		some r in some_resources
		some l in fast_label_sets
	])
	print("inputs where decision disagrees:", bad)
	bad == []
}

# The fast bodies do take a bearer token with a wildcard scope and an "N"
# label: the shapes most API reads have.
test_fast_path_takes_bearer_wildcard_scopes_and_normal_labels if {
	chartguard.fast_path with input as object.union(base, {
		"token": {"kind": "bearer", "scopes": ["user/*.rs"]},
		"resource": {
			"kind": "fhir", "phase": "response", "type": "Observation", "action": "read",
			"patient_status": "known", "patients": ["p1"], "labels": ["N"],
		},
	})
	not chartguard.fast_path with input as object.union(base, {
		"token": {"kind": "bearer", "scopes": ["user/Observation.rs"]},
		"resource": {
			"kind": "fhir", "phase": "response", "type": "Observation", "action": "read",
			"patient_status": "known", "patients": ["p1"], "labels": [],
		},
	})
}

# Patient reads have a fast body of their own (the SSN obligation).
patient_reads := [object.union_n([
	{"kind": "fhir", "interaction": "read", "type": "Patient", "phase": ph},
	a, p, l,
]) |
	some ph in ["request", "response"]
	some a in [{"action": "read"}, {"action": "vread"}]
	some p in [patient_sets[0], patient_sets[3]]
	some l in [{"labels": []}, {"labels": ["N"]}, {"labels": ["R"]}]
]

test_decision_agrees_on_patient_reads if {
	bad := disagreements([{"user": u, "token": t, "resource": r} |
		some u in [physician, users[2], patient, {"sub": "u1", "roles": ["registration"]}]
		some t in [tokens[0], tokens[1], tokens[5]]
		some r in patient_reads
	])
	print("inputs where decision disagrees:", bad)
	bad == []
}

# The commonest denials have fast bodies (fast_denial): a clinician
# without a care relationship, offered break-the-glass, and a role the
# table does not let take the action. Other shapes go the general way.
read_of(p) := object.union(base, {"resource": {"type": "Observation", "action": "read", "interaction": "read", "id": "o1", "patients": [p]}})

test_fast_denial_takes_a_missing_care_relationship if {
	d := chartguard.fast_denial with input as read_of("p9")
	d.reasons == ["not on the patient's care team"]
	d.break_glass == {"allowed": true, "reasons": ["BTG", "ETREAT"]}
	d.require_mfa_within_s == 300
	d == chartguard.general_denial with input as read_of("p9")
}

test_fast_denial_takes_a_table_denial if {
	x := object.union(read_of("p1"), {
		"user": {"roles": ["nurse"]},
		"resource": {"action": "delete", "interaction": "delete"},
	})
	d := chartguard.fast_denial with input as x
	d.reasons == ["role nurse may not delete Observation"]
	d.break_glass.allowed == false
	d == chartguard.general_denial with input as x
}

test_fast_denial_leaves_other_shapes_to_the_general_path if {
	# two roles, a VIP, a sensitive label, a grant in the session
	not chartguard.fast_denial with input as object.union(read_of("p9"), {"user": {"roles": ["physician", "nurse"]}})
	not chartguard.fast_denial with input as read_of("p7")
	not chartguard.fast_denial with input as object.union(read_of("p9"), {"resource": {"labels": ["R"]}})
	not chartguard.fast_denial with input as object.union(read_of("p9"), {"session": {"break_glass": [{"patient": "p2", "expires_at": "2026-11-25T12:00:00Z"}]}})
	chartguard.decision.reasons == ["not on the patient's care team"] with input as object.union(read_of("p9"), {"user": {"roles": ["physician", "nurse"]}})
}
