# The patient role: self only.
package chartguard_test

patient_user := {"roles": ["patient"], "fhir_user": "Patient/p9", "patient_links": ["Patient/p9", "Patient/p10"]}

as_patient(resource) := object.union(base, {"user": patient_user, "resource": resource})

own(r) := object.union(r, {"patients": ["p9"]})

test_patient_reads_own_records if {
	decide(as_patient(own(read("Patient")))).allow
	decide(as_patient(own(read("Observation")))).allow
	decide(as_patient(own(search("Observation")))).allow
	decide(as_patient(object.union(own(read("Observation")), {"action": "vread", "interaction": "vread"}))).allow
	decide(as_patient(object.union(own(read("Observation")), {"action": "history", "interaction": "history-instance"}))).allow
}

test_patient_reads_every_linked_patient if {
	decide(as_patient(object.union(search("Observation"), {"patients": ["p9", "p10"]}))).allow
}

test_patient_denied_other_patients if {
	d := decide(as_patient(read("Observation"))) # patients ["p1"]
	d.allow == false
	d.reasons == ["role patient may only access the caller's own records"]
}

test_patient_denied_when_any_patient_is_not_linked if {
	d := decide(as_patient(object.union(search("Observation"), {"patients": ["p9", "p1"]})))
	d.allow == false
}

test_patient_denied_writes if {
	d := decide(as_patient(own(write("create", "Observation"))))
	d.allow == false
	d.reasons == ["role patient may not create Observation"]
	not decide(as_patient(own(write("update", "Patient")))).allow
	not decide(as_patient(own(write("delete", "Observation")))).allow
}

test_patient_denied_non_clinical_and_non_patient_types if {
	not decide(as_patient(own(read("AuditEvent")))).allow
	not decide(as_patient(object.union(read("Practitioner"), {"patient_status": "none", "patients": []}))).allow
}

test_patient_read_by_id_waits_for_the_response_phase if {
	# A read by id names no patient until the EMR answers: it passes the
	# request phase, and the response phase decides the resource itself.
	by_id := object.union(read("Observation"), {"patient_status": "unknown", "patients": []})
	history := object.union(by_id, {"action": "history", "interaction": "history-instance"})
	every x in [
		as_patient(by_id),
		as_patient(object.union(by_id, {"action": "vread", "interaction": "vread"})),
		as_patient(history),
	] {
		decide(x).allow
	}
	decide(as_patient(own(object.union(read("Observation"), {"phase": "response"})))).allow
}

test_patient_read_by_id_denied_outside_the_request_phase if {
	# Security: only the request phase defers, and only for FHIR: the
	# resource itself (response phase) must be the caller's, and a route's
	# response is not checked per resource.
	by_id := object.union(read("Observation"), {"patient_status": "unknown", "patients": []})
	d := decide(as_patient(object.union(by_id, {"phase": "response"})))
	d.allow == false
	d.reasons == ["role patient may only access the caller's own records", "the resource's patients could not be determined"]

	# Input without a phase, or with a phase other than "request", is
	# decided as a response.
	every x in [json.remove(as_patient(by_id), ["resource/phase"]), as_patient(object.union(by_id, {"phase": "Request"}))] {
		d := decide(x)
		d.allow == false
		d.reasons == ["role patient may only access the caller's own records", "the resource's patients could not be determined"]
	}
	every x in [
		as_patient(object.union(read("Observation"), {"phase": "response"})),
		as_patient(object.union(by_id, {"kind": "route"})),
	] {
		d := decide(x)
		d.allow == false
		d.reasons == ["role patient may only access the caller's own records"]
	}
}

test_patient_writes_and_operations_never_defer if {
	by_id := object.union(read("Observation"), {"patient_status": "unknown", "patients": []})
	not decide(as_patient(object.union(by_id, {"action": "update", "interaction": "update"}))).allow
	not decide(as_patient(object.union(by_id, {"action": "operation", "interaction": "operation", "operation": "everything"}))).allow
}

test_patient_search_not_deferred if {
	res := object.union(unknown_search("Observation"), {"interaction": "search-type"})
	not decide(as_patient(res)).allow
}

test_patient_links_must_be_patient_references if {
	odd := {"roles": ["patient"], "patient_links": ["Practitioner/p9", "p9", "Patient/", "Patient/p9/_history/1", 9, null]}
	x := object.union(base, {"user": odd, "resource": own(read("Observation"))})
	not decide(x).allow
}

test_patient_without_links_denied if {
	x := object.union(base, {"user": {"roles": ["patient"]}, "resource": own(read("Observation"))})
	not decide(x).allow
}

test_patient_role_is_self_only_even_if_data_forgets if {
	d := decide(as_patient(read("Observation"))) with data.chartguard_data.self_only_roles as {}
	d.allow == false
	d.reasons == ["role patient may only access the caller's own records"]
	d2 := decide(as_patient(read("Observation"))) with data.chartguard_data as json.remove(data.chartguard_data, ["self_only_roles"])
	d2.allow == false
	d2.reasons == ["role patient may only access the caller's own records"]
}

test_self_only_roles_from_data if {
	d := decide(mk(["nurse"], read("Observation"))) with data.chartguard_data.self_only_roles.nurse as true
	d.allow == false
	d.reasons == ["role nurse may only access the caller's own records"]
	allowed(["nurse"], read("Observation")) with data.chartguard_data.self_only_roles.nurse as false
}

# HIPAA 164.524(a)(1)(i): psychotherapy notes are not part of the
# individual's right of access. The patient role (a portal login or a
# patient app) is refused PSYTHPN-labelled resources of its own and its
# linked records, in both phases, with the reason and no break-the-glass.
test_patient_denied_psychotherapy_notes if {
	pz := {"roles": ["patient"], "fhir_user": "Patient/pz"}
	note := {"type": "DocumentReference", "id": "d1", "action": "read", "interaction": "read", "patient_status": "known", "patients": ["pz"], "labels": ["PSYTHPN"]}
	app := {"token": {"kind": "bearer", "client_id": "app", "scopes": ["patient/*.rs"], "launch_patient": "pz"}}
	every phase in ["request", "response"] {
		every x in [
			object.union(base, {"user": pz, "resource": object.union(note, {"phase": phase})}),
			object.union(object.union(base, {"user": pz, "resource": object.union(note, {"phase": phase})}), app),
			as_patient(object.union(note, {"phase": phase, "patients": ["p9"]})),
			as_patient(object.union(note, {"phase": phase, "patients": ["p10"], "labels": ["PSY", "PSYTHPN"]})),
			as_patient(object.union(note, {"phase": phase, "patients": ["p9"], "action": "search", "interaction": "search-type"})),
			as_patient(object.union(note, {"phase": phase, "patients": ["p9"], "type": "Observation"})),
		] {
			d := decide(x)
			d.allow == false
			d.reasons == ["psychotherapy notes are excluded from a patient's right of access"]
			d.break_glass == {"allowed": false, "reasons": []}
			d.require_mfa_within_s == 0
		}
	}

	# Under a break-the-glass grant too (the patient role may not break
	# glass, nor may a table that lets it).
	g := object.union(as_patient(object.union(note, {"patients": ["p9"]})), grant("p9", later))
	not decide(g).allow
	not decide(g).allow with data.chartguard_data.break_glass_roles.patient as {"PATRQT": true}

	# Other sensitive labels of their own records stay open to them.
	decide(as_patient(object.union(note, {"patients": ["p9"], "labels": ["PSY"]}))).allow

	# Another patient's note: the own-records reason.
	o := decide(as_patient(object.union(note, {"patients": ["p1"]})))
	o.reasons == ["role patient may only access the caller's own records"]

	# Whatever sensitive_labels says; and the labels come from the data.
	not decide(as_patient(object.union(note, {"patients": ["p9"]}))).allow with data.chartguard_data.sensitive_labels as {}
	decide(as_patient(object.union(note, {"patients": ["p9"]}))).allow with data.chartguard_data.psychotherapy_note_labels as {}

	# Staff see them as any other sensitive record: with a relationship
	# and a grant.
	staff := object.union(base, {"user": {"roles": ["physician"], "fhir_user": "Practitioner/pr1"}, "resource": object.union(note, {"patients": ["p1"]})})
	sd := decide(staff)
	sd.allow == false
	sd.break_glass.allowed
	decide(object.union(staff, grant("p1", later))).allow
}

# A self-only role from the data is bound the same way.
test_self_only_roles_denied_psychotherapy_notes if {
	proxy := {"roles": ["proxy"], "fhir_user": "Patient/p9"}
	note := {"type": "DocumentReference", "id": "d1", "action": "read", "interaction": "read", "patient_status": "known", "patients": ["p9"], "labels": ["PSYTHPN"]}
	d := decide(object.union(base, {"user": proxy, "resource": note})) with data.chartguard_data.self_only_roles.proxy as true with data.chartguard_data.roles.proxy as {"read": {"*": true}}
	d.reasons == ["psychotherapy notes are excluded from a patient's right of access"]
	decide(object.union(base, {"user": proxy, "resource": object.union(note, {"labels": []})})).allow with data.chartguard_data.self_only_roles.proxy as true with data.chartguard_data.roles.proxy as {"read": {"*": true}}
}
