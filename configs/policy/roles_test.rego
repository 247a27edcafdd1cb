# One allow and one deny (at least) per role, on the default data.
package chartguard_test

test_physician if {
	allowed(["physician"], read("Observation"))
	allowed(["physician"], read("Practitioner"))
	allowed(["physician"], write("create", "Condition"))
	allowed(["physician"], write("patch", "MedicationRequest"))
	allowed(["physician"], {"type": "Observation", "id": "o1", "action": "history", "interaction": "history-instance", "patient_status": "known", "patients": ["p1"]})
	denied_because(["physician"], write("delete", "Observation"), "role physician may not delete Observation")
	denied_because(["physician"], read("AuditEvent"), "role physician may not read AuditEvent")
	denied_because(["physician"], read("Claim"), "role physician may not read Claim")
}

test_nurse if {
	allowed(["nurse"], read("Observation"))
	allowed(["nurse"], search("MedicationRequest"))
	allowed(["nurse"], write("create", "Observation"))
	allowed(["nurse"], write("update", "Observation"))
	denied_because(["nurse"], write("delete", "Observation"), "role nurse may not delete Observation")
	denied_because(["nurse"], write("create", "MedicationRequest"), "role nurse may not create MedicationRequest")
	denied_because(["nurse"], write("patch", "Observation"), "role nurse may not patch Observation")
}

test_registration if {
	allowed(["registration"], write("create", "Patient"))
	allowed(["registration"], write("update", "Coverage"))
	allowed(["registration"], search("Appointment"))
	allowed(["registration"], read("RelatedPerson"))
	denied_because(["registration"], read("Observation"), "role registration may not read Observation")
	denied_because(["registration"], search("Condition"), "role registration may not search Condition")
	denied_because(["registration"], write("delete", "Patient"), "role registration may not delete Patient")
}

test_billing if {
	allowed(["billing"], read("Claim"))
	allowed(["billing"], search("ExplanationOfBenefit"))
	allowed(["billing"], read("Encounter"))
	allowed(["billing"], read("Account"))
	allowed(["billing"], write("update", "Claim"))
	allowed(["billing"], write("create", "Account"))
	denied_because(["billing"], write("delete", "Claim"), "role billing may not delete Claim")
	denied_because(["billing"], read("DocumentReference"), "role billing may not read DocumentReference")
	denied_because(["billing"], read("Observation"), "role billing may not read Observation")
}

test_lab if {
	allowed(["lab"], write("create", "DiagnosticReport"))
	allowed(["lab"], write("update", "Specimen"))
	allowed(["lab"], read("Patient"))
	allowed(["lab"], search("ServiceRequest"))
	denied_because(["lab"], write("create", "Patient"), "role lab may not create Patient")
	denied_because(["lab"], read("Condition"), "role lab may not read Condition")
}

test_pharmacist if {
	allowed(["pharmacist"], read("AllergyIntolerance"))
	allowed(["pharmacist"], search("MedicationRequest"))
	allowed(["pharmacist"], read("Medication"))
	allowed(["pharmacist"], write("create", "MedicationDispense"))
	allowed(["pharmacist"], write("update", "MedicationDispense"))
	denied_because(["pharmacist"], write("create", "MedicationRequest"), "role pharmacist may not create MedicationRequest")
	denied_because(["pharmacist"], read("DocumentReference"), "role pharmacist may not read DocumentReference")
}

test_privacy_officer if {
	allowed(["privacy-officer"], read("Patient"))
	allowed(["privacy-officer"], read("AuditEvent"))
	allowed(["privacy-officer"], search("Consent"))
	denied_because(["privacy-officer"], read("Observation"), "role privacy-officer may not read Observation")
	denied_because(["privacy-officer"], write("update", "Consent"), "role privacy-officer may not update Consent")
}

test_it_admin if {
	allowed(["it-admin"], {"type": "CapabilityStatement", "action": "read", "interaction": "capabilities", "patient_status": "none", "patients": []})
	denied_because(["it-admin"], read("Patient"), "role it-admin may not read Patient")
	denied_because(["it-admin"], read("Practitioner"), "role it-admin may not read Practitioner")
}

test_unknown_role_grants_nothing if {
	denied_because(["janitor"], read("Observation"), "role janitor may not read Observation")
}

test_no_role if {
	denied_because([], read("Observation"), "no role")
	denied_because(["", 7, null], read("Observation"), "no role")
	d := decide(json.remove(base, ["user/roles"]))
	d.allow == false
	"no role" in d.reasons
	d2 := decide(object.union(base, {"user": {"roles": null}}))
	d2.allow == false
	"no role" in d2.reasons
}

test_wildcard_covers_clinical_types_only if {
	every t, _ in data.chartguard_data.clinical_types {
		allowed(["physician"], read(t))
	}
	denied_because(["physician"], read("Claim"), "role physician may not read Claim")
	denied_because(["nurse"], read("*"), "role nurse may not read *")
}

# Health information management corrects the record (update, patch) and
# exports it for a stated purpose; it never creates, nor deletes (no role
# deletes as shipped: an entered-in-error resource is corrected, not
# removed).
test_him if {
	allowed(["him"], read("Observation"))
	allowed(["him"], write("update", "Condition"))
	denied_because(["him"], write("create", "Observation"), "role him may not create Observation")
	denied_because(["him"], read("Claim"), "role him may not read Claim")
}

test_him_may_not_delete if {
	every t in ["Observation", "Patient", "DocumentReference"] {
		d := decide(mk(["him"], write("delete", t)))
		d.allow == false
		d.reasons == [sprintf("role him may not delete %s", [t])]
		d.break_glass.allowed == false
	}
}

test_no_role_deletes_as_shipped if {
	every perms in data.chartguard_data.roles {
		object.get(perms, "delete", {}) == {}
	}
}

# "read also covers vread, history and search" (README): the table grants
# each of them on exactly the types it grants read on.
test_read_covers_vread_history_and_search if {
	every perms in data.chartguard_data.roles {
		every action in ["vread", "history", "search"] {
			object.get(perms, action, {}) == object.get(perms, "read", {})
		}
	}
}

# The history of one resource (history-instance) and of a type
# (history-type) of the types each role reads, in both phases.
history_instance(t) := {"type": t, "id": "x1", "action": "history", "interaction": "history-instance", "patient_status": "known", "patients": ["p1"]}

history_type(t) := {"type": t, "action": "history", "interaction": "history-type", "patient_status": "known", "patients": ["p1"]}

test_history_follows_read if {
	cases := [
		[{"roles": ["nurse"], "fhir_user": "Practitioner/pr7"}, "Observation"],
		[{"roles": ["nurse"], "fhir_user": "Practitioner/pr7"}, "RelatedPerson"],
		[{"roles": ["lab"]}, "Observation"],
		[{"roles": ["lab"]}, "Specimen"],
		[{"roles": ["pharmacist"]}, "MedicationRequest"],
		[{"roles": ["registration"]}, "Appointment"],
		[{"roles": ["registration"]}, "Patient"],
		[{"roles": ["billing"]}, "Claim"],
		[{"roles": ["billing"]}, "Encounter"],
		[{"roles": ["privacy-officer"]}, "AuditEvent"],
		[{"roles": ["patient"], "fhir_user": "Patient/p1"}, "Claim"],
		[{"roles": ["patient"], "fhir_user": "Patient/p1"}, "ExplanationOfBenefit"],
		[{"roles": ["physician"], "fhir_user": "Practitioner/pr1"}, "Appointment"],
	]
	every c in cases {
		every r in [history_instance(c[1]), history_type(c[1])] {
			every phase in ["request", "response"] {
				decide(object.union(base, {"user": c[0], "resource": object.union(r, {"phase": phase})})).allow
			}
		}
	}

	# Directory types, which belong to no patient.
	pract := {"type": "Practitioner", "id": "pr9", "action": "history", "interaction": "history-instance", "patient_status": "none", "patients": []}
	allowed(["physician"], pract)
	allowed(["nurse"], pract)

	# A type the role may not read, it may not read the history of.
	denied_because(["lab"], history_instance("Condition"), "role lab may not read the history of Condition")
	denied_because(["registration"], history_type("Observation"), "role registration may not read the history of Observation")
}
