# Sensitivity labels (labels.rego), in both phases: R (restricted) opens to
# the care team and the patient, V (very restricted) to the patient only.
# pr6 is on p3's care team, pr5 on p7's, pr1 on neither.
package chartguard_test

labelled(phase, type, patients, labels) := {
	"phase": phase, "type": type, "id": "x1", "action": "read", "interaction": "read",
	"patient_status": "known", "patients": patients, "labels": labels,
}

as_role(role, fhir_user, resource) := object.union(base, {"user": {"roles": [role], "fhir_user": fhir_user}, "resource": resource})

p9_user := {"roles": ["patient"], "fhir_user": "Patient/p9", "patient_links": ["Patient/p9"]}

test_unlabelled_and_other_labels_restrict_nothing if {
	every labels in [[], ["PSY"], ["HIV"], ["N"], null] {
		decide(as_role("lab", "", labelled("response", "Observation", ["p3"], labels))).allow
		decide(as_role("physician", "Practitioner/pr6", labelled("response", "Observation", ["p3"], labels))).allow
	}
	decide(json.remove(as_role("lab", "", labelled("response", "Observation", ["p3"], [])), ["resource/labels"])).allow
}

test_restricted_record_opens_to_the_care_team if {
	every phase in both_phases {
		every labels in [["R"], ["PSY", "R"], ["R", "HIV"]] {
			decide(as_role("physician", "Practitioner/pr6", labelled(phase, "Observation", ["p3"], labels))).allow
			decide(as_role("nurse", "Practitioner/pr9", labelled(phase, "Condition", ["p3"], labels))).allow
		}

		# A relationship from the EMR counts as well.
		x := object.union(as_role("physician", "Practitioner/pr1", labelled(phase, "Observation", ["p3"], ["R"])), {"relationship": {"p3": {"care_team": true}}})
		decide(x).allow
	}
}

test_restricted_record_denied_to_other_roles if {
	every phase in both_phases {
		every c in [["lab", "Observation"], ["pharmacist", "Observation"], ["him", "Observation"], ["registration", "Patient"], ["billing", "Patient"], ["privacy-officer", "Patient"]] {
			d := decide(as_role(c[0], "Practitioner/pr6", labelled(phase, c[1], ["p3"], ["R"])))
			d.allow == false
			d.reasons == ["restricted record"]
		}
	}
}

test_restricted_record_denied_off_the_care_team if {
	d := decide(as_role("physician", "Practitioner/pr1", labelled("response", "Observation", ["p3"], ["R"])))
	d.allow == false
	d.reasons == ["not on the patient's care team"]
}

test_restricted_record_needs_proven_patients if {
	# A label on a request whose patients are pending: the care team cannot
	# be shown, so only a role the label does not restrict passes.
	r := object.union(labelled("request", "Observation", [], ["R"]), {"patient_status": "unknown"})
	d := decide(as_role("physician", "Practitioner/pr6", r))
	d.allow == false
	d.reasons == ["restricted record"]
	not decide(object.union(base, {"user": p9_user, "resource": r})).allow
}

test_restricted_record_opens_to_the_patient if {
	every phase in both_phases {
		decide(object.union(base, {"user": p9_user, "resource": labelled(phase, "Observation", ["p9"], ["PSY", "R"])})).allow
	}
	d := decide(object.union(base, {"user": p9_user, "resource": labelled("response", "Observation", ["p3"], ["R"])}))
	d.allow == false
	d.reasons == ["role patient may only access the caller's own records"]
}

test_very_restricted_record_opens_to_the_patient_only if {
	every phase in both_phases {
		decide(object.union(base, {"user": p9_user, "resource": labelled(phase, "Observation", ["p9"], ["V"])})).allow
		every c in [
			["physician", "Practitioner/pr5", "Observation"],
			["nurse", "Practitioner/pr8", "Observation"],
			["physician", "Practitioner/pr1", "Observation"],
			["him", "", "Observation"],
			["lab", "", "Observation"],
			["privacy-officer", "", "Patient"],
			["registration", "", "Patient"],
		] {
			d := decide(as_role(c[0], c[1], labelled(phase, c[2], ["p7"], ["V"])))
			d.allow == false
			d.reasons == ["very restricted record"]
		}
	}
}

test_very_restricted_record_of_a_patient_with_a_staff_role if {
	# A him employee who is also the patient reads their own record as the
	# patient; the him role alone would be denied.
	u := {"roles": ["him", "patient"], "patient_links": ["Patient/p9"]}
	decide(object.union(base, {"user": u, "resource": labelled("response", "Observation", ["p9"], ["V"])})).allow
	d := decide(object.union(base, {"user": u, "resource": labelled("response", "Observation", ["p7"], ["V"])}))
	d.allow == false
	d.reasons == ["role patient may only access the caller's own records", "very restricted record"]
}

test_label_codes_come_from_data if {
	x := as_role("lab", "", labelled("response", "Observation", ["p5"], ["HIV"]))
	d := decide(x) with data.chartguard_data.restricted_labels as {"R": true, "HIV": true}
	d.reasons == ["restricted record"]
	y := as_role("physician", "Practitioner/pr5", labelled("response", "Observation", ["p7"], ["V"]))
	decide(y).allow with data.chartguard_data.very_restricted_labels as {}
}

test_reasons_name_no_patient_or_user if {
	inputs := [
		as_role("physician", "Practitioner/pr1", labelled("response", "Observation", ["p3"], ["R"])),
		as_role("lab", "Practitioner/pr1", labelled("response", "Observation", ["p3"], ["R"])),
		as_role("physician", "Practitioner/pr1", labelled("response", "Observation", ["p7"], ["V"])),
		as_role("physician", "Practitioner/pr1", labelled("request", "Observation", ["p2"], [])),
	]
	every x in inputs {
		d := decide(x)
		d.allow == false
		every reason in d.reasons {
			not contains(reason, "p3")
			not contains(reason, "p7")
			not contains(reason, "p2")
			not contains(reason, "pr1")
			not contains(reason, "u1")
		}
	}
}
