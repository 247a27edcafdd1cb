# Sensitivity (labels.rego), in both phases: R, V and the sensitive codes,
# VIP and employee patients need break-the-glass, even with a care
# relationship; only the patient themself reads their own. pr6 is on p3's
# care team, pr5 on p7's, pr1 on neither; p7 is a VIP and p8 an employee
# (data.json).
package chartguard_test

labelled(phase, type, patients, labels) := {
	"phase": phase, "type": type, "id": "x1", "action": "read", "interaction": "read",
	"patient_status": "known", "patients": patients, "labels": labels,
}

as_role(role, fhir_user, resource) := object.union(base, {"user": {"roles": [role], "fhir_user": fhir_user}, "resource": resource})

p9_user := {"roles": ["patient"], "fhir_user": "Patient/p9", "patient_links": ["Patient/p9"]}

test_unlabelled_and_other_labels_restrict_nothing if {
	every labels in [[], ["N"], ["NORN"], null] {
		decide(as_role("lab", "", labelled("response", "Observation", ["p3"], labels))).allow
		decide(as_role("physician", "Practitioner/pr6", labelled("response", "Observation", ["p3"], labels))).allow
	}
	decide(json.remove(as_role("lab", "", labelled("response", "Observation", ["p3"], [])), ["resource/labels"])).allow
}

test_sensitive_records_need_break_glass_even_on_the_care_team if {
	every phase in both_phases {
		every c in [
			[["R"], "restricted record"],
			[["PSY", "R"], "restricted record"],
			[["V"], "very restricted record"],
			[["R", "V"], "very restricted record"],
			[["PSY"], "sensitive record (PSY)"],
			[["HIV", "ETH"], "sensitive record (ETH, HIV)"],
			[["ETHUD"], "sensitive record (ETHUD)"],
			[["OPIOIDUD"], "sensitive record (OPIOIDUD)"],
			[["SDV"], "sensitive record (SDV)"],
			[["PSYTHPN"], "sensitive record (PSYTHPN)"],
		] {
			d := decide(as_role("physician", "Practitioner/pr6", labelled(phase, "Observation", ["p3"], c[0])))
			d.allow == false
			d.reasons == [c[1]]
			d.break_glass == {"allowed": true, "reasons": ["BTG", "ETREAT"]}
			d.require_mfa_within_s == 300
			d.obligations.tags == ["sensitive"]
		}

		# A relationship from the EMR changes nothing.
		x := object.union(as_role("physician", "Practitioner/pr1", labelled(phase, "Observation", ["p3"], ["R"])), {"relationship": {"p3": {"care_team": true}}})
		not decide(x).allow
	}
}

test_sensitive_records_of_other_roles if {
	every phase in both_phases {
		# Roles that may break the glass are offered it; the others not.
		every c in [["lab", "Observation", ["BTG", "ETREAT"]], ["pharmacist", "Observation", ["BTG", "ETREAT"]], ["him", "Observation", ["BTG"]], ["registration", "Patient", ["BTG"]], ["billing", "Patient", ["BTG"]]] {
			d := decide(as_role(c[0], "", labelled(phase, c[1], ["p3"], ["R"])))
			d.allow == false
			d.reasons == ["restricted record"]
			d.break_glass == {"allowed": true, "reasons": c[2]}
		}
		d := decide(as_role("privacy-officer", "", labelled(phase, "Patient", ["p3"], ["R"])))
		d.allow == false
		d.reasons == ["restricted record"]
		d.break_glass.allowed == false
	}
}

test_off_the_care_team_and_sensitive if {
	d := decide(as_role("physician", "Practitioner/pr1", labelled("response", "Observation", ["p3"], ["R"])))
	d.allow == false
	d.reasons == ["not on the patient's care team"]
	d.break_glass.allowed == true
}

test_sensitive_record_needs_proven_patients if {
	# A label on a request whose patients are pending: no grant can name
	# them, so a labelled record is denied without an offer.
	r := object.union(labelled("request", "Observation", [], ["R"]), {"patient_status": "unknown"})
	d := decide(as_role("lab", "", r))
	d.allow == false
	d.reasons == ["restricted record"]
	d.break_glass.allowed == false
	not decide(object.union(base, {"user": p9_user, "resource": r})).allow
}

test_sensitive_record_opens_to_the_patient if {
	every phase in both_phases {
		every labels in [["PSY", "R"], ["V"], ["HIV"]] {
			d := decide(object.union(base, {"user": p9_user, "resource": labelled(phase, "Observation", ["p9"], labels)}))
			d.allow
			d.obligations.tags == ["sensitive"]
		}
	}
	d := decide(object.union(base, {"user": p9_user, "resource": labelled("response", "Observation", ["p3"], ["R"])}))
	d.allow == false
	d.reasons == ["role patient may only access the caller's own records"]
	d.break_glass.allowed == false
}

test_vip_and_employee_patients_need_break_glass if {
	every phase in both_phases {
		every c in [["p7", "VIP patient's record", "vip"], ["p8", "employee-patient's record", "employee"]] {
			x := object.union(
				as_role("physician", "Practitioner/pr1", labelled(phase, "Observation", [c[0]], [])),
				{"relationship": {c[0]: {"care_team": true}}},
			)
			d := decide(x)
			d.allow == false
			d.reasons == [c[1]]
			d.break_glass.allowed == true
			d.obligations.tags == [c[2]]

			# Registration too, and the tag is there.
			r := decide(as_role("registration", "", labelled(phase, "Patient", [c[0]], [])))
			r.allow == false
			r.obligations.tags == [c[2]]
		}
	}
}

test_audit_events_are_exempt_from_vip_and_employee if {
	every c in [["p7", "vip"], ["p8", "employee"]] {
		d := decide(as_role("privacy-officer", "", labelled("response", "AuditEvent", [c[0]], [])))
		d.allow
		d.obligations.tags == [c[1]]
	}

	# Labels still bind.
	not decide(as_role("privacy-officer", "", labelled("response", "AuditEvent", ["p1"], ["R"]))).allow
}

test_very_restricted_record_of_a_patient_with_a_staff_role if {
	# A him employee who is also the patient reads their own record as the
	# patient; the him role alone may not open it, nor break the glass.
	u := {"roles": ["him", "patient"], "patient_links": ["Patient/p9"]}
	decide(object.union(base, {"user": u, "resource": labelled("response", "Observation", ["p9"], ["V"])})).allow
	d := decide(object.union(base, {"user": u, "resource": labelled("response", "Observation", ["p7"], ["V"])}))
	d.allow == false
	d.reasons == ["role patient may only access the caller's own records", "very restricted record"]
	d.break_glass == {"allowed": true, "reasons": ["BTG"]}
}

test_label_codes_come_from_data if {
	x := as_role("lab", "", labelled("response", "Observation", ["p5"], ["XYZ"]))
	decide(x).allow
	d := decide(x) with data.chartguard_data.restricted_labels as {"R": true, "XYZ": true}
	d.reasons == ["restricted record"]
	y := as_role("physician", "Practitioner/pr5", labelled("response", "Observation", ["p6"], ["V"]))
	decide(y).allow with data.chartguard_data.very_restricted_labels as {}
		with data.chartguard_data.care_teams as {"Practitioner/pr5": {"p6": true}}
}

test_malformed_labels_deny if {
	every labels in ["R", {"R": true}, 1, true] {
		d := decide(as_role("lab", "", labelled("response", "Observation", ["p5"], labels)))
		d.allow == false
		"malformed resource labels" in d.reasons
	}
}

test_reasons_name_no_patient_or_user if {
	inputs := [
		as_role("physician", "Practitioner/pr1", labelled("response", "Observation", ["p3"], ["R"])),
		as_role("lab", "Practitioner/pr1", labelled("response", "Observation", ["p3"], ["R"])),
		as_role("physician", "Practitioner/pr1", labelled("response", "Observation", ["p7"], ["V"])),
		as_role("physician", "Practitioner/pr1", labelled("request", "Observation", ["p2"], [])),
		as_role("registration", "", labelled("request", "Patient", ["p8"], [])),
	]
	every x in inputs {
		d := decide(x)
		d.allow == false
		every reason in d.reasons {
			not contains(reason, "p3")
			not contains(reason, "p7")
			not contains(reason, "p8")
			not contains(reason, "p2")
			not contains(reason, "pr1")
			not contains(reason, "u1")
		}
	}
}
