# Missing or wrongly typed input fields never make allow true.
package chartguard_test

import data.chartguard

# Inputs that must all be denied. Most are base (which allows) with one
# field removed or broken.
broken_inputs := [
	{},
	{"user": null, "resource": null},
	json.remove(base, ["resource"]),
	json.remove(base, ["user"]),
	json.remove(base, ["resource/kind"]),
	json.remove(base, ["resource/action"]),
	json.remove(base, ["resource/type"]),
	object.union(base, {"user": {"roles": "physician"}}),
	object.union(base, {"user": {"roles": {"physician": true}}}),
	object.union(base, {"user": {"sub": 1}}),
	object.union(base, {"resource": {"kind": ["fhir"]}}),
	object.union(base, {"resource": {"type": null}}),
	object.union(base, {"resource": {"type": "*"}}),
	object.union(base, {"resource": {"action": ["search"]}}),
	json.remove(base, ["user/fhir_user"]),
	object.union(base, {"user": {"fhir_user": ["Practitioner/pr1"]}}),
	object.union(base, {"user": {"fhir_user": "Practitioner/pr1/"}}),
	object.union(json.remove(base, ["user/fhir_user"]), {"relationship": {"p1": {"care_team": "true"}}}),
	object.union(json.remove(base, ["user/fhir_user"]), {"relationship": {"p1": true}}),
	object.union(json.remove(base, ["user/fhir_user"]), {"relationship": [{"p1": {"care_team": true}}]}),
	object.union(base, {"resource": {"labels": ["V"]}}),
	object.union(base, {"resource": {"type": "OperationOutcome", "patient_status": "none", "patients": [], "phase": "Response"}}),
	"not an object",
	[base],
]

# Broken patients: they prove no patient. In the request phase a FHIR
# search with unproven patients waits for the response phase, which
# decides each entry; anywhere else they deny.
broken_patients := [
	json.remove(base, ["resource/patients"]),
	json.remove(base, ["resource/patient_status"]),
	object.union(base, {"resource": {"patients": "p1", "patient_status": "known"}}),
	object.union(base, {"resource": {"patients": [1, 2], "patient_status": "known"}}),
	object.union(base, {"resource": {"patient_status": "bogus", "patients": []}}),
	object.union(base, {"resource": {"patients": [["p1"]], "patient_status": "known"}}),
	object.union(base, {"resource": {"patients": {"p1": true}, "patient_status": "known"}}),
]

test_broken_patients_deny_outside_the_request_phase if {
	every x in broken_patients {
		d := chartguard.decision with input as object.union(x, {"resource": {"phase": "response"}})
		d.allow == false
		d.reasons == ["not on the patient's care team"]
		no_phase := chartguard.decision with input as json.remove(x, ["resource/phase"])
		no_phase.allow == false
		as_read := chartguard.decision with input as object.union(x, {"resource": {"phase": "response", "action": "read", "interaction": "read"}})
		as_read.allow == false
	}
}

test_broken_patients_are_unknown_in_the_request_phase if {
	every x in broken_patients {
		pending := chartguard.decision with input as x
		pending.allow == true
		strict := chartguard.decision with input as x with data.chartguard_data.search_requires_patient as true
		strict.allow == false
		strict.reasons == ["search must name a patient"]
	}
}

test_broken_inputs_deny_with_reasons if {
	every x in broken_inputs {
		d := chartguard.decision with input as x
		d.allow == false
		count(d.reasons) > 0
	}
}

test_base_input_is_allowed if {
	# Guards the test above: base itself must be allowed, or every broken
	# variant would be denied for the wrong reason.
	decide(base).allow
}

test_no_input_denies if {
	not chartguard.allow
	count(chartguard.decision.reasons) > 0
}

test_missing_data_denies if {
	d := decide(base) with data.chartguard_data as {}
	d.allow == false
	d.reasons == ["role physician may not search Observation"]
}
