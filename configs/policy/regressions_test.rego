# Regressions: inputs once decided wrongly, each now decided as the rules
# say: operations' output, patients the response leaves unknown, and
# wrongly typed or inconsistent input fields.
package chartguard_test

# $everything returns resources of every type; each is decided on whether
# the role may read its type, so running it grants no more than reading.
test_operation_output_is_decided_on_its_type if {
	op := {"action": "operation", "interaction": "operation", "operation": "everything", "phase": "response", "patient_status": "known", "patients": ["p1"], "labels": []}
	allowed(["physician"], object.union(op, {"type": "Observation", "id": "o1"}))
	allowed(["physician"], object.union(op, {"type": "Practitioner", "id": "pr9", "patients": [], "patient_status": "none"}))
	every type in ["Claim", "AuditEvent", "Coverage", "Account"] {
		d := decide(mk(["physician"], object.union(op, {"type": type, "id": "x1"})))
		d.allow == false
		d.reasons == [sprintf("role physician may not run operation $everything on %s", [type])]
	}

	# The request phase decides the operation itself, on the Patient.
	allowed(["physician"], object.union(op, {"type": "Patient", "id": "p1", "phase": "request"}))
}

# A patient/ scope reaches a resource that belongs to no patient, not one
# that names patients whatever its status says.
test_patient_scope_status_none_must_name_no_patient if {
	x := object.union(mk(["lab"], {"type": "Observation", "id": "o1", "action": "read", "interaction": "read", "phase": "response", "patient_status": "none", "patients": ["p1"], "labels": []}), {"token": {"kind": "bearer", "scopes": ["patient/*.rs"], "launch_patient": "p9"}})
	d := decide(x)
	d.allow == false
	d.reasons == ["token scopes do not permit read Observation"]
	decide(object.union(x, {"resource": {"patients": []}})).allow
}

# patient_links that are not a list of strings might name any patient:
# staff are kept out, with no break-the-glass offer.
test_malformed_patient_links_deny if {
	every links in ["Patient/p1", {"0": "Patient/p1"}, [7], null] {
		d := decide(object.union(mk(["physician"], read("Observation")), {"user": {"fhir_user": "Practitioner/pr2", "patient_links": links}}))
		d.allow == false
		d.break_glass.allowed == false
		"staff roles may not open the caller's own or a linked patient's record" in d.reasons
	}

	# false is no links, as absent is.
	decide(object.union(mk(["physician"], read("Observation")), {"user": {"patient_links": false}})).allow
}

# Roles that are not a list grant nothing, even an object whose values
# are role names.
test_roles_must_be_a_list if {
	every roles in [{"0": "physician"}, "physician"] {
		d := decide(object.union(base, {"user": {"roles": roles}, "resource": read("Observation")}))
		d.allow == false
		"no role" in d.reasons
	}
}

# A purpose of use that is present but not a string allows no export.
test_malformed_purpose_blocks_export if {
	x := asks(him, export_of("p1"))
	decide(x).allow
	every purpose in [false, null, 7] {
		d := decide(object.union(x, {"token": {"purpose_of_use": purpose}}))
		d.allow == false
		d.reasons == ["export is not permitted for this purpose of use"]
	}
}

# The search count cap depends on the action: a search is capped whatever
# its interaction says, as the fast path caps it.
test_search_cap_follows_the_action if {
	r := object.union(search("Observation"), {"interaction": "history-instance"})
	decide(mk(["physician"], r)).obligations.max_count == 1000
	decide(mk(["lab"], r)).obligations.max_count == 1000
	h := object.union(search("Observation"), {"action": "history", "interaction": "history-instance"})
	decide(mk(["lab"], h)).obligations.max_count == 0
}

# Staff never open their own or a relative's record, nor are offered
# break-the-glass into it, when staff_patient_links lists it, even on the
# patient's care team.
test_staff_patient_links_keep_staff_out if {
	nurse := {"sub": "u8", "roles": ["nurse"], "fhir_user": "Practitioner/pr8"}
	own := asks(nurse, obs_of("p8"))
	every x in [own, object.union(own, {"relationship": {"p8": {"care_team": true}}})] {
		d := decide(x)
		d.allow == false
		d.break_glass.allowed == false
		"staff roles may not open the caller's own or a linked patient's record" in d.reasons
	}

	# Other patients as before.
	decide(object.union(asks(nurse, obs_of("p1")), {"relationship": {"p1": {"care_team": true}}})).allow
	d := decide(asks(nurse, obs_of("p2")))
	d.reasons == ["not on the patient's care team"]
	d.break_glass.allowed == true
}

# Staff links keep staff out; they open nothing to a self-only role (a
# Practitioner login that also holds the patient role).
test_staff_patient_links_open_nothing if {
	x := asks({"sub": "u8", "roles": ["patient"], "fhir_user": "Practitioner/pr8"}, object.union(obs_of("p8"), {"phase": "response", "labels": ["PSY"]}))
	not decide(x).allow
	not decide(object.union(x, {"resource": {"labels": []}})).allow
	scoped := object.union(asks(pr1, obs_of("p8")), {"token": {"kind": "bearer", "scopes": ["patient/*.rs"]}, "user": {"fhir_user": "Practitioner/pr8"}})
	not decide(scoped).allow
}

# Input without a phase is decided as a response by the new rules too.
test_no_phase_is_a_response if {
	op := {"type": "Claim", "id": "x1", "action": "operation", "interaction": "operation", "operation": "everything", "patient_status": "known", "patients": ["p1"], "labels": []}
	not decide(json.remove(mk(["physician"], op), ["resource/phase"])).allow
	unknown := object.union(read("Observation"), {"patient_status": "unknown", "patients": []})
	d := decide(json.remove(mk(["lab"], unknown), ["resource/phase"]))
	d.allow == false
	"the resource's patients could not be determined" in d.reasons
}
