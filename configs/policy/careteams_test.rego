# The care-team rule (careteams.rego), in both phases. Static care teams
# from data.json: pr1 is on the teams of p1 and p8, not p2; pr7 (a nurse)
# on p1's.
package chartguard_test

# in_phase(phase, r) is resource fragment r in phase.
in_phase(phase, r) := object.union(r, {"phase": phase})

both_phases := ["request", "response"]

# as_clinician(roles, fhir_user, resource) asks with those roles as that
# practitioner and no relationships.
as_clinician(roles, fhir_user, resource) := object.union(base, {"user": {"roles": roles, "fhir_user": fhir_user}, "resource": resource})

of(r, patients) := object.union(r, {"patients": patients, "patient_status": "known"})

test_static_care_team_allows if {
	every phase in both_phases {
		decide(as_clinician(["physician"], "Practitioner/pr1", in_phase(phase, read("Observation")))).allow
		decide(as_clinician(["physician"], "Practitioner/pr1", in_phase(phase, of(search("Condition"), ["p1", "p6"])))).allow
		decide(as_clinician(["nurse"], "Practitioner/pr7", in_phase(phase, read("MedicationRequest")))).allow
	}
}

test_not_on_the_care_team_denied if {
	every phase in both_phases {
		d := decide(as_clinician(["physician"], "Practitioner/pr1", in_phase(phase, of(read("Observation"), ["p2"]))))
		d.allow == false
		d.reasons == ["not on the patient's care team"]
		not decide(as_clinician(["nurse"], "Practitioner/pr7", in_phase(phase, of(read("Observation"), ["p2"])))).allow
		not decide(as_clinician(["physician"], "Practitioner/pr2", in_phase(phase, read("Observation")))).allow
	}
}

test_care_team_needed_for_every_patient if {
	every phase in both_phases {
		d := decide(as_clinician(["physician"], "Practitioner/pr1", in_phase(phase, of(search("Observation"), ["p1", "p2"]))))
		d.allow == false
		d.reasons == ["not on the patient's care team"]
	}
}

test_care_relationship_from_input if {
	rel := {"relationship": {"p2": {"care_team": true}}}
	every phase in both_phases {
		x := object.union(as_clinician(["physician"], "Practitioner/pr1", in_phase(phase, of(read("Observation"), ["p2"]))), rel)
		decide(x).allow

		# One patient from the static team, one from input.
		y := object.union(as_clinician(["physician"], "Practitioner/pr1", in_phase(phase, of(read("Observation"), ["p1", "p2"]))), rel)
		decide(y).allow

		# Without a fhir_user the relationship alone suffices.
		z := json.remove(object.union(as_clinician(["nurse"], "", in_phase(phase, of(read("Observation"), ["p2"]))), rel), ["user/fhir_user"])
		decide(z).allow
	}
}

test_care_relationship_must_be_true if {
	every rel in [
		{"p2": {"care_team": false}},
		{"p2": {"care_team": "true"}},
		{"p2": {"pcp": "yes"}},
		{"p2": {"encounter_days_ago": 31}},
		{"p2": {"encounter_days_ago": -1}},
		{"p2": {"encounter_days_ago": "3"}},
		{"p2": {"department": "cardio"}},
		{"p2": {"department": ""}},
		{"p3": {"care_team": true}},
		{"p2": true},
	] {
		x := object.union(as_clinician(["physician"], "Practitioner/pr1", of(read("Observation"), ["p2"])), {"relationship": rel})
		d := decide(x)
		d.allow == false
		d.reasons == ["not on the patient's care team"]
	}
}

test_no_fhir_user_no_static_team if {
	x := json.remove(as_clinician(["physician"], "", read("Observation")), ["user/fhir_user"])
	d := decide(x)
	d.allow == false
	d.reasons == ["not on the patient's care team"]
}

test_other_roles_are_not_subject_to_care_teams if {
	every phase in both_phases {
		every c in [
			["lab", read("Observation")],
			["pharmacist", search("MedicationRequest")],
			["billing", read("Encounter")],
			["him", read("DocumentReference")],
			["registration", read("Patient")],
			["privacy-officer", read("Patient")],
		] {
			decide(as_clinician([c[0]], "Practitioner/pr1", in_phase(phase, of(c[1], ["p2"])))).allow
		}
	}
}

allowed_p2(roles, r) if decide(as_clinician(roles, "Practitioner/pr1", of(r, ["p2"]))).allow

test_a_role_outside_care_teams_grants_alone if {
	# The rule binds a user only when every role that grants the request
	# is a care-team role.
	allowed_p2(["physician", "lab"], read("Observation"))
	allowed_p2(["physician", "him"], read("Condition"))
	d := decide(as_clinician(["physician", "lab"], "Practitioner/pr1", of(read("Condition"), ["p2"])))
	d.allow == false
	d.reasons == ["not on the patient's care team", "role lab may not read Condition"]
	d2 := decide(as_clinician(["physician", "nurse"], "Practitioner/pr1", of(read("Condition"), ["p2"])))
	d2.reasons == ["not on the patient's care team"]
}

test_non_clinical_types_are_not_subject_to_care_teams if {
	every phase in both_phases {
		every t in ["Practitioner", "Organization", "Location", "Medication", "PractitionerRole"] {
			r := {"type": t, "id": "x1", "action": "read", "interaction": "read", "patient_status": "none", "patients": [], "phase": phase}
			decide(as_clinician(["physician"], "Practitioner/pr2", r)).allow
		}
	}
}

test_care_team_roles_come_from_data if {
	x := as_clinician(["physician"], "Practitioner/pr1", of(read("Observation"), ["p2"]))
	decide(x).allow with data.chartguard_data.care_team_roles as {"nurse": true}
	y := as_clinician(["lab"], "Practitioner/pr1", of(read("Observation"), ["p2"]))
	d := decide(y) with data.chartguard_data.care_team_roles as {"lab": true}
	d.allow == false
	d.reasons == ["not on the patient's care team"]
	decide(object.union(y, {"resource": {"patients": ["p1"]}})).allow with data.chartguard_data.care_team_roles as {"lab": true}
}

test_care_teams_come_from_data if {
	x := as_clinician(["physician"], "Practitioner/pr1", read("Observation"))
	not decide(x).allow with data.chartguard_data.care_teams as {}
	not decide(x).allow with data.chartguard_data as json.remove(data.chartguard_data, ["care_teams"])
	decide(object.union(x, {"resource": {"patients": ["p2"]}})).allow with data.chartguard_data.care_teams as {"Practitioner/pr1": {"p2": true}}
}

test_unknown_patients_wait_for_the_response_phase if {
	# Request phase: reads and searches whose patients only the response
	# shows pass; the response decides each resource.
	by_id := object.union(read("Observation"), {"patient_status": "unknown", "patients": []})
	decide(as_clinician(["physician"], "Practitioner/pr2", by_id)).allow
	decide(as_clinician(["nurse"], "Practitioner/pr2", unknown_search("Observation"))).allow

	# Response phase: unknown patients cannot be shown to be on the team,
	# and no role may see a resource whose patients are unknown.
	every r in [by_id, unknown_search("Observation")] {
		d := decide(as_clinician(["physician"], "Practitioner/pr1", in_phase("response", r)))
		d.allow == false
		d.reasons == ["not on the patient's care team", "the resource's patients could not be determined"]
	}
	d := decide(as_clinician(["physician"], "Practitioner/pr1", in_phase("response", object.union(by_id, {"patient_status": "none"}))))
	d.allow == false
	d.reasons == ["not on the patient's care team"]
}

test_unknown_patients_deny_every_role_in_the_response_phase if {
	# Roles outside the care teams too: the policy cannot rule out a VIP,
	# an employee or the caller's own record.
	unknown := {"patient_status": "unknown", "patients": []}
	every x in [
		mk(["lab"], in_phase("response", object.union(read("Observation"), unknown))),
		mk(["lab"], in_phase("response", object.union(unknown_search("Observation"), unknown))),
		mk(["registration"], in_phase("response", object.union(read("Patient"), unknown))),
		mk(["billing"], in_phase("response", object.union(read("Claim"), unknown))),
	] {
		d := decide(x)
		d.allow == false
		d.reasons == ["the resource's patients could not be determined"]
		d.break_glass.allowed == false
	}

	# The request phase still defers them to the response.
	decide(mk(["lab"], in_phase("request", object.union(read("Observation"), unknown)))).allow
}

test_pcp_encounter_and_department_are_relationships if {
	every rel in [
		{"p2": {"pcp": true}},
		{"p2": {"encounter_days_ago": 0}},
		{"p2": {"encounter_days_ago": 30}},
		{"p2": {"department": "cardio"}},
	] {
		x := object.union(as_clinician(["physician"], "Practitioner/pr1", of(read("Observation"), ["p2"])), {"relationship": rel, "user": {"department": "cardio"}})
		d := decide(x)
		d.allow
		d.obligations == {"redact": [], "block_export": true, "max_count": 0, "tags": []}
	}

	# The encounter window comes from the data.
	y := object.union(as_clinician(["nurse"], "Practitioner/pr1", of(read("Observation"), ["p2"])), {"relationship": {"p2": {"encounter_days_ago": 8}}})
	not decide(y).allow with data.chartguard_data.encounter_window_days as 7
	decide(y).allow with data.chartguard_data.encounter_window_days as 8
}

test_no_relationship_offers_break_glass if {
	every phase in both_phases {
		d := decide(as_clinician(["nurse"], "Practitioner/pr1", in_phase(phase, of(read("Observation"), ["p2"]))))
		d.allow == false
		d.reasons == ["not on the patient's care team"]
		d.break_glass == {"allowed": true, "reasons": ["BTG", "ETREAT"]}
		d.require_mfa_within_s == 300
	}
}

# Types outside clinical_types that belong to a patient (an Appointment
# shows the clinic, a RelatedPerson the family) need the relationship as
# clinical data does, for every action, in both phases; without one,
# break-the-glass is offered. Only resources of no patient (status "none")
# are exempt.
test_patient_compartment_types_need_a_care_relationship if {
	every phase in both_phases {
		every c in [
			["physician", read("Appointment")],
			["physician", search("Appointment")],
			["physician", {"type": "Appointment", "id": "a1", "action": "vread", "interaction": "vread"}],
			["nurse", read("RelatedPerson")],
			["nurse", search("RelatedPerson")],
			["physician", {"type": "RelatedPerson", "id": "rp1", "action": "history", "interaction": "history-instance"}],
		] {
			r := in_phase(phase, of(c[1], ["p2"]))
			d := decide(as_clinician([c[0]], "Practitioner/pr1", r))
			d.allow == false
			d.reasons == ["not on the patient's care team"]
			d.break_glass == {"allowed": true, "reasons": ["BTG", "ETREAT"]}
			d.require_mfa_within_s == 300

			# With a relationship, or under a grant, as for clinical data.
			decide(as_clinician([c[0]], "Practitioner/pr1", in_phase(phase, of(c[1], ["p1"])))).allow
			decide(object.union(as_clinician([c[0]], "Practitioner/pr1", r), {"relationship": {"p2": {"pcp": true}}})).allow
			g := decide(object.union(as_clinician([c[0]], "Practitioner/pr1", r), grant("p2", later)))
			g.allow
			"break-glass" in g.obligations.tags
		}
	}

	# Writes too, for a table that lets a care-team role write them.
	w := of(write("update", "Appointment"), ["p2"])
	wd := decide(as_clinician(["physician"], "Practitioner/pr1", w)) with data.chartguard_data.roles.physician.update.Appointment as true
	wd.reasons == ["not on the patient's care team"]
	decide(as_clinician(["physician"], "Practitioner/pr1", of(w, ["p1"]))).allow with data.chartguard_data.roles.physician.update.Appointment as true

	# A route is decided the same way.
	not decide(as_clinician(["physician"], "Practitioner/pr1", object.union(of(read("Appointment"), ["p2"]), {"kind": "route"}))).allow

	# Unknown patients wait for the response phase, which decides each
	# resource on its own patients.
	decide(as_clinician(["physician"], "Practitioner/pr1", unknown_search("Appointment"))).allow
	not decide(as_clinician(["physician"], "Practitioner/pr1", in_phase("response", unknown_search("Appointment")))).allow
}

# Every type a care-team role reaches beyond clinical_types, and that
# ChartGuard classifies as belonging to a patient, is bound: Coverage,
# Account, Claim and ExplanationOfBenefit too, should the table grant them.
test_care_team_roles_need_a_relationship_for_every_patient_type if {
	every t in ["Appointment", "RelatedPerson", "Coverage", "Account", "Claim", "ExplanationOfBenefit", "AppointmentResponse"] {
		x := as_clinician(["nurse"], "Practitioner/pr1", of(read(t), ["p2"]))
		d := decide(x) with data.chartguard_data.roles.nurse.read as {t: true}
		d.reasons == ["not on the patient's care team"]
		decide(object.union(x, {"resource": {"patients": ["p1"]}})).allow with data.chartguard_data.roles.nurse.read as {t: true}
	}
}

# Registration and billing are not care-team roles: they keep their access
# to the patient types of their table without a relationship.
test_front_office_roles_keep_patient_types_without_a_relationship if {
	every phase in both_phases {
		every c in [
			["registration", read("Appointment")],
			["registration", search("RelatedPerson")],
			["registration", read("Coverage")],
			["registration", write("update", "Appointment")],
			["registration", write("create", "RelatedPerson")],
			["billing", read("Coverage")],
			["billing", search("Account")],
			["billing", write("update", "Claim")],
		] {
			decide(as_clinician([c[0]], "Practitioner/pr1", in_phase(phase, of(c[1], ["p2"])))).allow
		}
	}
}

# The proxy derives care relationships from CareTeam, Encounter (and
# EpisodeOfCare) and Patient.generalPractitioner. A clinician under a
# break-the-glass grant alone may not write them: adding themselves to
# the care team, or opening an encounter, would outlive the grant. Denied
# with the reason, and no break-the-glass offer, with or without a grant.
test_grant_does_not_write_relationship_types if {
	every t in ["CareTeam", "Encounter", "EpisodeOfCare", "Patient"] {
		every action in ["create", "update", "patch"] {
			x := as_clinician(["physician"], "Practitioner/pr1", of(write(action, t), ["p2"]))
			reason := sprintf("%s %s needs a care relationship with the patient; break-the-glass does not open it", [action, t])
			every y in [x, object.union(x, grant("p2", later))] {
				d := decide(y)
				d.allow == false
				d.reasons == [reason]
				d.break_glass == {"allowed": false, "reasons": []}
				d.require_mfa_within_s == 0
			}

			# With a real relationship the write is allowed, grant or not.
			decide(as_clinician(["physician"], "Practitioner/pr1", of(write(action, t), ["p1"]))).allow
			decide(object.union(x, {"relationship": {"p2": {"encounter_days_ago": 2}}})).allow
			decide(object.union(object.union(x, grant("p2", later)), {"relationship": {"p2": {"care_team": true}}})).allow
		}

		# Delete, for a table that allows it.
		del := object.union(as_clinician(["physician"], "Practitioner/pr1", of(write("delete", t), ["p2"])), grant("p2", later))
		dd := decide(del) with data.chartguard_data.roles.physician.delete as {"*": true}
		dd.allow == false
		dd.break_glass.allowed == false

		# The grant still opens reading them.
		r := as_clinician(["physician"], "Practitioner/pr1", of(read(t), ["p2"]))
		not decide(r).allow
		decide(object.union(r, grant("p2", later))).allow
	}

	# Other clinical writes still open under the grant.
	decide(object.union(as_clinician(["physician"], "Practitioner/pr1", of(write("create", "Observation"), ["p2"])), grant("p2", later))).allow

	# Relationship types come from the data.
	enc := object.union(as_clinician(["physician"], "Practitioner/pr1", of(write("create", "Encounter"), ["p2"])), grant("p2", later))
	decide(enc).allow with data.chartguard_data.relationship_types as {"CareTeam": true}
}

# A sensitive record with a real relationship: the grant is for the
# sensitivity, so break-the-glass is still offered, and opens the write.
test_relationship_write_of_a_sensitive_record_offers_break_glass if {
	x := as_clinician(["physician"], "Practitioner/pr1", of(object.union(write("update", "Encounter"), {"labels": ["R"]}), ["p1"]))
	d := decide(x)
	d.allow == false
	d.reasons == ["restricted record"]
	d.break_glass.allowed
	decide(object.union(x, grant("p1", later))).allow
}

# Roles that write these types by design, without a care relationship,
# keep doing so: registration opens encounters and registers patients.
test_roles_outside_care_teams_write_relationship_types if {
	decide(as_clinician(["registration"], "Practitioner/pr1", of(write("create", "Encounter"), ["p2"]))).allow
	decide(as_clinician(["registration"], "Practitioner/pr1", of(write("update", "Patient"), ["p2"]))).allow
	decide(as_clinician(["registration"], "Practitioner/pr1", {"type": "Patient", "action": "create", "interaction": "create", "patient_status": "unknown", "patients": []})).allow
}

# Without the relationship, the reason a grant cannot lift comes first,
# whatever the label.
test_relationship_write_reason_comes_before_sensitivity if {
	every labels in [["V"], ["R"], ["PSY"]] {
		x := as_clinician(["physician"], "Practitioner/pr1", of(object.union(write("update", "CareTeam"), {"labels": labels}), ["p2"]))
		d := decide(x)
		d.reasons == ["update CareTeam needs a care relationship with the patient; break-the-glass does not open it"]
		d.break_glass.allowed == false
	}
}
