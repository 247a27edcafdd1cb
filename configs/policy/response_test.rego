# The response phase: ChartGuard asks about every resource a response
# exposes (a read, each Bundle entry, included and contained resources),
# with the request's action and the resource's own type, patients and
# labels. Demo fixed points (data.json mirrors the demo EMR): pr1 is on
# p1's care team and not on p2's; p3's team is pr6 and pr9, p7's pr5 and
# pr8; every p3 resource is labelled R, every p7 resource V.
package chartguard_test

# as_user(user, resource) is base with the user replaced and the resource
# fields given merged in.
as_user(u, resource) := object.union(json.remove(base, ["user"]), {"user": u, "resource": resource})

clinician(role, fhir_user) := {"iss": "https://idp.example.org", "sub": "u1", "roles": [role], "fhir_user": fhir_user}

dr1 := clinician("physician", "Practitioner/pr1")

# entry(action, type, patients, labels) is one resource of a response.
entry(action, type, patients, labels) := {
	"phase": "response",
	"type": type,
	"id": "x1",
	"action": action,
	"interaction": interaction_of[action],
	"patients": patients,
	"patient_status": status_of(patients),
	"labels": labels,
}

interaction_of := {"read": "read", "search": "search-type", "create": "create"}

status_of(patients) := "known" if count(patients) > 0

status_of(patients) := "none" if count(patients) == 0

test_response_phase_table if {
	p9 := {"sub": "u9", "roles": ["patient"], "fhir_user": "Patient/p9", "patient_links": ["Patient/p9"]}
	cases := [
		# [name, user, resource, allow, reasons]
		["own team's observation", dr1, entry("search", "Observation", ["p1"], []), true, []],
		["other team's observation", dr1, entry("search", "Observation", ["p2"], []), false, ["not on the patient's care team"]],
		["read of other team's patient", dr1, entry("read", "Patient", ["p2"], []), false, ["not on the patient's care team"]],
		["restricted record, physician on team", clinician("physician", "Practitioner/pr6"), entry("read", "Observation", ["p3"], ["R"]), false, ["restricted record"]],
		["restricted record, nurse on team", clinician("nurse", "Practitioner/pr9"), entry("search", "Condition", ["p3"], ["R"]), false, ["restricted record"]],
		["restricted record, physician not on team", dr1, entry("read", "Observation", ["p3"], ["R"]), false, ["not on the patient's care team"]],
		["restricted record, lab", clinician("lab", "Practitioner/pr6"), entry("read", "Observation", ["p3"], ["R"]), false, ["restricted record"]],
		["very restricted record, physician on team", clinician("physician", "Practitioner/pr5"), entry("read", "Observation", ["p7"], ["V"]), false, ["very restricted record"]],
		["very restricted record, physician not on team", dr1, entry("read", "Observation", ["p7"], ["V"]), false, ["very restricted record"]],
		["very restricted record, him", clinician("him", ""), entry("read", "Observation", ["p7"], ["V"]), false, ["very restricted record"]],
		["own very restricted record, patient", p9, entry("read", "Observation", ["p9"], ["V"]), true, []],
		["own restricted record, patient", p9, entry("search", "Condition", ["p9"], ["PSY", "R"]), true, []],
		["another patient's record, patient", p9, entry("read", "Observation", ["p1"], []), false, ["role patient may only access the caller's own records"]],
		["operation outcome", dr1, entry("search", "OperationOutcome", [], []), true, []],
		["nested bundle container", dr1, entry("read", "Bundle", [], []), true, []],
		["operation outcome, patient", p9, entry("read", "OperationOutcome", [], []), true, []],
		["included practitioner", dr1, entry("search", "Practitioner", [], []), true, []],
		["included organization, nurse", clinician("nurse", "Practitioner/pr7"), entry("search", "Organization", [], []), true, []],
		["included practitioner, billing", clinician("billing", ""), entry("search", "Practitioner", [], []), false, ["role billing may not search Practitioner"]],
		["included other patient", dr1, entry("search", "Patient", ["p2"], []), false, ["not on the patient's care team"]],
		["entry of two patients, one on team", dr1, entry("search", "Observation", ["p1", "p2"], []), false, ["not on the patient's care team"]],
		["created resource", dr1, entry("create", "Observation", ["p1"], []), true, []],
		["lab, any patient", clinician("lab", ""), entry("search", "Observation", ["p2"], []), true, []],
		["psychiatric data, on team", clinician("physician", "Practitioner/pr4"), entry("read", "Condition", ["p4"], ["PSY"]), false, ["sensitive record (PSY)"]],
		["unlabelled data, on team", clinician("physician", "Practitioner/pr4"), entry("read", "Condition", ["p4"], []), true, []],
	]
	bad := [c[0] | some c in cases; not case_ok(c)]
	print("cases that failed:", bad)
	bad == []
}

# case_ok(c) holds when the decision for case c = [name, user, resource,
# allow, reasons] allows as expected, with the expected reasons.
case_ok(c) if {
	d := decide(as_user(c[1], c[2]))
	d.allow == c[3]
	d.reasons == c[4]
}

test_request_phase_table if {
	by_id := {"type": "Observation", "id": "o1", "action": "read", "interaction": "read", "patient_status": "unknown", "patients": []}
	cases := [
		["unknown-patient search, physician", dr1, unknown_search("Observation"), true, []],
		["unknown-patient search, billing", clinician("billing", ""), unknown_search("Observation"), false, ["role billing may not search Observation"]],
		["read by id, physician", dr1, by_id, true, []],
		["read by id, nurse not on any team", clinician("nurse", ""), by_id, true, []],
		["write with unknown patient", dr1, object.union(by_id, {"action": "update", "interaction": "update"}), false, ["write must name a patient"]],
		["known patient, other team", dr1, object.union(search("Observation"), {"patients": ["p2"]}), false, ["not on the patient's care team"]],
		["known patient, own team", dr1, search("Observation"), true, []],
	]
	bad := [c[0] | some c in cases; not case_ok(c)]
	print("cases that failed:", bad)
	bad == []
}

test_operation_outcome_needs_an_authenticated_caller if {
	oo := entry("read", "OperationOutcome", [], [])
	d := decide(as_user({"roles": ["physician"]}, oo))
	d.allow == false
	d.reasons == ["not authenticated"]

	# Without a role too: it is a message about the request.
	decide(as_user({"sub": "u1", "roles": []}, oo)).allow
}

test_operation_outcome_rule_is_response_phase_only if {
	oo := entry("read", "OperationOutcome", [], [])
	denied_because(["physician"], object.union(oo, {"phase": "request"}), "role physician may not read OperationOutcome")
	denied_because(["physician"], json.remove(oo, ["phase"]), "role physician may not read OperationOutcome")

	# One tied to a patient is decided like any other resource.
	denied_because(["physician"], object.union(oo, {"patient_status": "known", "patients": ["p1"]}), "role physician may not read OperationOutcome")
}
