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
	json.remove(base, ["resource/patients"]),
	json.remove(base, ["resource/patient_status"]),
	object.union(base, {"user": {"roles": "physician"}}),
	object.union(base, {"user": {"roles": {"physician": true}}}),
	object.union(base, {"user": {"sub": 1}}),
	object.union(base, {"resource": {"kind": ["fhir"]}}),
	object.union(base, {"resource": {"type": null}}),
	object.union(base, {"resource": {"type": "*"}}),
	object.union(base, {"resource": {"action": ["search"]}}),
	object.union(base, {"resource": {"patients": "p1", "patient_status": "known"}}),
	object.union(base, {"resource": {"patients": [1, 2], "patient_status": "known"}}),
	object.union(base, {"resource": {"patient_status": "bogus", "patients": []}}),
	"not an object",
	[base],
]

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
