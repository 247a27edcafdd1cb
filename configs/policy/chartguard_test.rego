# Tests of the decision document, capabilities, unknown-patient searches,
# writes without patients, operations, routes, static content and multiple
# roles.
package chartguard_test

test_decision_has_every_contract_key if {
	d := decide(base)
	object.keys(d) == {"allow", "reasons", "break_glass", "require_mfa_within_s", "obligations"}
	d.break_glass == {"allowed": false, "reasons": []}
	d.require_mfa_within_s == 0
	d.obligations == {"redact": ["Patient.identifier[system=http://hl7.org/fhir/sid/us-ssn]"], "block_export": true, "max_count": 1000, "tags": []}
}

test_allow_has_no_reasons if {
	d := decide(mk(["physician"], read("Observation")))
	d.allow == true
	d.reasons == []
}

test_deny_reasons_are_sorted_and_never_empty if {
	d := decide({})
	d.allow == false
	count(d.reasons) > 0
	d.reasons == sort(d.reasons)
}

# ------------------------------------------------------------ capabilities

test_capabilities_allowed_to_any_authenticated_caller if {
	cap := {"type": "CapabilityStatement", "action": "read", "interaction": "capabilities", "patient_status": "none", "patients": []}
	allowed([], cap)
	allowed(["it-admin"], cap)
	allowed(["patient"], cap)
}

test_capabilities_of_another_type_or_with_patients_are_data_requests if {
	# Only the CapabilityStatement itself needs no role: an input that calls
	# a read of patient data "capabilities" is decided on the role table.
	cap := {"type": "CapabilityStatement", "action": "read", "interaction": "capabilities", "patient_status": "none", "patients": []}
	denied_because(["it-admin"], object.union(cap, {"type": "Observation"}), "role it-admin may not read Observation")
	denied_because(["it-admin"], object.union(cap, {"patients": ["p7"], "patient_status": "known"}), "role it-admin may not read CapabilityStatement")
	d := decide(as_clinician(["physician"], "Practitioner/pr2", object.union(read("Observation"), {"interaction": "capabilities"})))
	d.allow == false
	d.break_glass.allowed == true
}

test_capabilities_denied_without_subject if {
	cap := {"type": "CapabilityStatement", "action": "read", "interaction": "capabilities", "patient_status": "none", "patients": []}
	d := decide(object.union(mk([], cap), {"user": {"sub": ""}}))
	d.allow == false
	"not authenticated" in d.reasons
}

test_missing_subject_denies_everything if {
	x := json.remove(mk(["physician"], read("Observation")), ["user/sub"])
	d := decide(x)
	d.allow == false
	"not authenticated" in d.reasons
}

# ------------------------------------------------------ unknown patients

# Roles whose table lets them search Observation.
observation_searchers := {role | some role, perms in data.chartguard_data.roles; perms.search["*"]} | {role | some role, perms in data.chartguard_data.roles; perms.search.Observation}

test_unknown_patient_search_passes_the_request_phase if {
	# The response phase decides each entry.
	count(observation_searchers) > 2
	every role in observation_searchers - {"patient"} {
		allowed([role], unknown_search("Observation"))
	}
	denied_because(["billing"], unknown_search("Observation"), "role billing may not search Observation")
	denied_because(["registration"], unknown_search("Observation"), "role registration may not search Observation")
}

test_unknown_patient_search_needs_a_role_that_may_search_the_type if {
	every role in object.keys(data.chartguard_data.roles) - observation_searchers {
		not decide(mk([role], unknown_search("Observation"))).allow
	}
}

test_unknown_patient_history_passes_the_request_phase if {
	res := {"type": "Observation", "action": "history", "interaction": "history-type", "patient_status": "unknown", "patients": []}
	allowed(["physician"], res)
	denied_because(["registration"], res, "role registration may not read the history of Observation")
}

test_history_of_one_resource_is_not_a_search if {
	res := {"type": "Observation", "id": "o1", "action": "history", "interaction": "history-instance", "patient_status": "unknown", "patients": []}
	allowed(["physician"], res)
	denied_because(["registration"], res, "role registration may not read the history of Observation")
	d := decide(mk(["physician"], res)) with data.chartguard_data.search_requires_patient as true
	d.allow
}

test_read_by_id_with_unknown_patient_passes_the_request_phase if {
	by_id := object.union(read("Observation"), {"patient_status": "unknown", "patients": []})
	allowed(["physician"], by_id)
	allowed(["nurse"], by_id)
	allowed(["lab"], by_id)
	allowed(["physician"], object.union(by_id, {"action": "vread", "interaction": "vread"}))
	denied_because(["billing"], by_id, "role billing may not read Observation")
}

test_system_search_denied if {
	res := {"type": "", "action": "search", "interaction": "search-system", "patient_status": "unknown", "patients": []}
	d := decide(mk(["physician"], res))
	d.allow == false
	d.reasons == ["role physician may not search all resource types"]
	denied_because(["physician"], res, "search must name a patient") with data.chartguard_data.search_requires_patient as true
}

test_known_status_without_patients_counts_as_unknown if {
	res := {"type": "Observation", "action": "search", "interaction": "search-type", "patient_status": "known", "patients": []}
	allowed(["physician"], res)
	denied_because(["physician"], res, "search must name a patient") with data.chartguard_data.search_requires_patient as true
	denied_because(["physician"], object.union(res, {"phase": "response"}), "not on the patient's care team")
}

test_missing_patient_status_counts_as_unknown if {
	x := json.remove(mk(["physician"], search("Observation")), ["resource/patient_status"])
	decide(x).allow
	d := decide(x) with data.chartguard_data.search_requires_patient as true
	d.allow == false
	"search must name a patient" in d.reasons
}

test_unknown_patient_search_defers_only_in_the_request_phase if {
	# Input without a phase is decided as strictly as a response.
	x := json.remove(mk(["physician"], unknown_search("Observation")), ["resource/phase"])
	d := decide(x)
	d.allow == false
	d.reasons == ["not on the patient's care team", "search must name a patient", "the resource's patients could not be determined"]
	odd := decide(mk(["physician"], object.union(unknown_search("Observation"), {"phase": "Request"})))
	odd.allow == false
}

test_known_patient_search_allowed if {
	allowed(["physician"], search("Observation"))
	allowed(["nurse"], search("Condition"))
}

test_search_of_non_patient_type_allowed if {
	res := {"type": "Practitioner", "action": "search", "interaction": "search-type", "patient_status": "none", "patients": []}
	allowed(["physician"], res)
	allowed(["nurse"], res)
	denied_because(["billing"], res, "role billing may not search Practitioner")
}

test_search_of_non_clinical_type_without_patient_allowed if {
	allowed(["billing"], unknown_search("Claim"))
	allowed(["privacy-officer"], unknown_search("AuditEvent"))
	allowed(["billing"], unknown_search("Claim")) with data.chartguard_data.search_requires_patient as true
}

test_search_requires_patient_restores_the_request_phase_rule if {
	every role in observation_searchers {
		denied_because([role], unknown_search("Observation"), "search must name a patient") with data.chartguard_data.search_requires_patient as true
	}
	denied_because(["physician", "nurse", "lab"], unknown_search("Observation"), "search must name a patient") with data.chartguard_data.search_requires_patient as true
}

test_unknown_patient_rule_kept_when_flag_missing if {
	d := decide(mk(["physician"], unknown_search("Observation"))) with data.chartguard_data as json.remove(data.chartguard_data, ["search_requires_patient"])
	d.allow == false
	"search must name a patient" in d.reasons
}

# ------------------------------------------------------------------ writes

test_write_with_unknown_patient_denied if {
	every action in ["create", "update", "patch", "delete"] {
		res := object.union(write(action, "Observation"), {"patient_status": "unknown", "patients": []})
		denied_because(["physician", "nurse", "him"], res, "write must name a patient")
	}

	# A write ChartGuard proved (its patients known) is decided on them.
	allowed(["nurse"], write("create", "Observation"))
}

test_write_with_no_patient_to_clinical_data_denied if {
	res := object.union(write("create", "Observation"), {"patient_status": "none", "patients": []})
	denied_because(["physician"], res, "write must name a patient")
}

test_creating_a_patient_names_no_patient if {
	res := {"type": "Patient", "action": "create", "interaction": "create", "patient_status": "unknown", "patients": []}
	allowed(["registration"], res)
	denied_because(["registration"], object.union(res, {"action": "update", "interaction": "update", "id": "p1"}), "write must name a patient")
}

# A conditional write (PUT /Claim?identifier=..., a POST with
# If-None-Exist) names no patient ChartGuard can prove: denied for every
# type, clinical or not, in the request phase.
test_conditional_writes_must_name_a_patient_whatever_the_type if {
	cases := [
		["billing", "update", "Claim"],
		["billing", "create", "Claim"],
		["billing", "update", "Account"],
		["billing", "create", "Account"],
		["registration", "update", "Coverage"],
		["registration", "create", "Coverage"],
		["registration", "update", "Appointment"],
		["registration", "update", "RelatedPerson"],
		["registration", "update", "Encounter"],
		["pharmacist", "update", "MedicationDispense"],
	]
	every c in cases {
		res := object.union(write(c[1], c[2]), {"patient_status": "unknown", "patients": []})
		d := decide(mk([c[0]], res))
		d.allow == false
		d.reasons == ["write must name a patient"]
		d.break_glass.allowed == false

		# A route write too.
		not decide(mk([c[0]], object.union(res, {"kind": "route"}))).allow

		# The same write with its patient proven is decided on it.
		allowed([c[0]], write(c[1], c[2]))
	}

	# Whatever a role's table says: patch and delete as well.
	patch := object.union(write("patch", "Claim"), {"patient_status": "unknown", "patients": []})
	denied_because(["billing"], patch, "write must name a patient") with data.chartguard_data.roles.billing.patch as {"Claim": true}
	del := object.union(write("delete", "Claim"), {"patient_status": "unknown", "patients": []})
	denied_because(["billing"], del, "write must name a patient") with data.chartguard_data.roles.billing.delete as {"Claim": true}
}

test_write_to_a_type_without_patient_data_allowed if {
	# A type ChartGuard classifies as holding no patient data
	# (patient_status "none") names no patient by nature.
	res := {"type": "Location", "id": "l1", "action": "update", "interaction": "update", "patient_status": "none", "patients": []}
	allowed(["registration"], res) with data.chartguard_data.roles.registration.update.Location as true
	allowed(["physician"], res) with data.chartguard_data.roles.physician.update.Location as true
	denied_because(["registration"], object.union(res, {"patient_status": "unknown"}), "write must name a patient") with data.chartguard_data.roles.registration.update.Location as true
}

# ------------------------------------------------------------- operations

everything(status, patients) := {"type": "Patient", "id": "p1", "action": "operation", "interaction": "operation", "operation": "everything", "patient_status": status, "patients": patients}

test_physician_may_run_everything if {
	allowed(["physician"], everything("known", ["p1"]))
}

test_operation_denied_to_roles_not_listing_it if {
	denied_because(["nurse"], everything("known", ["p1"]), "role nurse may not run operation $everything on Patient")
	denied_because(["patient"], everything("known", ["p1"]), "role patient may not run operation $everything on Patient")
}

test_operation_without_patient_denied if {
	denied_because(["physician"], everything("unknown", []), "operation must name a patient")
}

test_export_denied_by_default if {
	res := {"type": "", "action": "operation", "interaction": "operation", "operation": "export", "patient_status": "unknown", "patients": []}
	every role in object.keys(data.chartguard_data.roles) {
		denied_because([role], res, sprintf("role %s may not run operation $export on all resource types", [role]))
	}
}

test_operation_without_name_denied if {
	res := json.remove(everything("known", ["p1"]), ["operation"])
	denied_because(["physician"], res, "role physician may not run an unnamed operation on Patient")
}

# ----------------------------------------------------------------- routes

test_route_uses_role_table if {
	res := {"kind": "route", "type": "DocumentReference", "action": "read", "interaction": "read", "patient_status": "known", "patients": ["p1"]}
	allowed(["physician"], res)
	denied_because(["registration"], res, "role registration may not read DocumentReference")
}

test_route_search_without_patient_denied if {
	# A route's response is not checked per resource: nothing defers.
	res := {"kind": "route", "type": "Observation", "action": "search", "interaction": "search", "patient_status": "unknown", "patients": []}
	denied_because(["physician"], res, "search must name a patient")
	denied_because(["lab"], res, "search must name a patient")
}

test_route_read_without_patient_denied_to_care_team_roles if {
	res := {"kind": "route", "type": "DocumentReference", "action": "read", "interaction": "read", "patient_status": "unknown", "patients": []}
	denied_because(["physician"], res, "not on the patient's care team")
}

# ------------------------------------------------------ kinds and actions

test_static_allowed_to_authenticated_callers if {
	allowed([], {"kind": "static", "type": "", "action": "read", "patient_status": "none", "patients": []})
}

test_unknown_kind_denied if {
	denied_because(["physician"], {"kind": "proxy"}, "unsupported resource kind")
}

test_unknown_action_denied if {
	denied_because(["physician"], {"action": "purge", "interaction": "delete"}, "unsupported action")
}

# ------------------------------------------------------------ multi-role

test_multiple_roles_get_the_union if {
	roles := ["nurse", "registration"]
	allowed(roles, write("create", "Patient"))
	allowed(roles, write("create", "Observation"))
	allowed(roles, read("Coverage"))
	denied_because(roles, write("create", "Condition"), "role nurse may not create Condition")
	denied_because(roles, write("create", "Condition"), "role registration may not create Condition")
}

test_multi_role_deny_gives_a_reason_per_role if {
	d := decide(mk(["billing", "lab"], write("delete", "Observation")))
	d.allow == false
	d.reasons == ["role billing may not delete Observation", "role lab may not delete Observation"]
}

test_hard_denial_overrides_every_role if {
	denied_because(["physician", "him"], everything("unknown", []), "operation must name a patient")
	denied_because(["physician", "him"], object.union(write("update", "Condition"), {"patient_status": "unknown", "patients": []}), "write must name a patient")
}
