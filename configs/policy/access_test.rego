# Break-the-glass grants, the own-record rule for staff, SMART scopes, mass
# access, export and obligations.
package chartguard_test

import data.chartguard

# grant(p, expires_at) is a session holding one break-the-glass grant.
grant(p, expires_at) := {"session": {"mfa": true, "mfa_age_s": 60, "break_glass": [{"grant": "g1", "patient": p, "reason": "ETREAT", "expires_at": expires_at}]}}

later := "2026-11-25T12:00:00Z"

earlier := "2026-11-25T09:59:59Z"

# asks(user, resource) asks as user (fields merged into base's user).
asks(u, r) := object.union(base, {"user": u, "resource": r})

pr1 := {"roles": ["physician"], "fhir_user": "Practitioner/pr1"}

obs_of(p) := {"type": "Observation", "id": "o1", "action": "read", "interaction": "read", "patient_status": "known", "patients": [p], "labels": []}

# ---------------------------------------------------------- break-the-glass

test_active_grant_opens_the_record if {
	every c in [["p2", []], ["p3", ["R"]], ["p7", ["V"]], ["p8", []]] {
		r := object.union(obs_of(c[0]), {"labels": c[1]})
		not decide(asks(pr1, r)).allow
		d := decide(object.union(asks(pr1, r), grant(c[0], later)))
		d.allow
		"break-glass" in d.obligations.tags
	}
}

test_expired_or_foreign_grant_opens_nothing if {
	every g in [grant("p2", earlier), grant("p2", "2026-11-25T10:00:00Z"), grant("p9", later), {"session": {"break_glass": [{"patient": "p2", "expires_at": 1}]}}] {
		d := decide(object.union(asks(pr1, obs_of("p2")), g))
		d.allow == false
		d.break_glass.allowed
	}

	# Without a request time no grant is active.
	not decide(json.remove(object.union(asks(pr1, obs_of("p2")), grant("p2", later)), ["request/time"])).allow
}

test_grant_does_not_widen_the_role if {
	d := decide(object.union(asks({"roles": ["registration"]}, obs_of("p2")), grant("p2", later)))
	d.allow == false
	d.reasons == ["role registration may not read Observation"]
	d.break_glass.allowed == false

	# Nor help a role that may not break the glass.
	po := {"roles": ["privacy-officer"]}
	p := object.union(obs_of("p3"), {"type": "Patient", "labels": ["R"]})
	not decide(object.union(asks(po, p), grant("p3", later))).allow

	# Nor lift a request-wide denial.
	m := object.union(object.union(asks(pr1, obs_of("p2")), grant("p2", later)), {"usage": {"distinct_patients_window": 11}})
	not decide(m).allow with data.chartguard_data.max_distinct_patients as 10
}

test_grant_covers_every_patient if {
	r := object.union(obs_of("p2"), {"patients": ["p2", "p5"]})
	d := decide(object.union(asks(pr1, r), grant("p2", later)))
	d.allow == false
	d.break_glass.allowed
}

# --------------------------------------------------------------- own record

test_staff_never_open_their_own_or_a_linked_record if {
	every c in [
		[{"roles": ["physician"], "fhir_user": "Practitioner/pr1", "patient_links": ["Patient/p1"]}, ["Observation", "Patient"]],
		[{"roles": ["him"], "fhir_user": "Patient/p1"}, ["Observation", "Patient"]],
		[{"roles": ["registration"], "patient_links": ["Patient/p0", "Patient/p1"]}, ["Patient"]],
	] {
		every t in c[1] {
			d := decide(object.union(asks(c[0], object.union(obs_of("p1"), {"type": t})), grant("p1", later)))
			d.allow == false
			d.break_glass.allowed == false
			"staff roles may not open the caller's own or a linked patient's record" in d.reasons
		}
	}
}

test_patient_reads_own_and_linked_records if {
	u := {"roles": ["patient"], "fhir_user": "Patient/p9", "patient_links": ["Patient/p9", "Patient/p10"]}
	decide(asks(u, obs_of("p9"))).allow
	decide(asks(u, obs_of("p10"))).allow
	decide(asks(u, object.union(obs_of("p9"), {"patients": ["p9", "p10"]}))).allow
	d := decide(asks(u, obs_of("p11")))
	d.allow == false
	d.break_glass.allowed == false
	not decide(asks({"roles": ["patient"], "patient_links": ["Patient/", "Patient/a/b", 7]}, obs_of("p9"))).allow
}

# ------------------------------------------------------------------- scopes

bearer(scopes) := {"token": {"kind": "bearer", "client_id": "app", "scopes": scopes}}

with_token(x, t) := object.union(x, t)

test_scopes_narrow_the_role if {
	x := asks(pr1, obs_of("p1"))
	every scopes in [["user/Observation.rs"], ["user/Observation.r"], ["user/*.read"], ["system/*.cruds"], ["user/Observation.*"], ["openid", "user/*.rs"]] {
		decide(with_token(x, bearer(scopes))).allow
	}
	every scopes in [[], ["user/Observation.s"], ["user/Condition.rs"], ["user/Observation.write"], ["user/Observation.sr"], ["user/Observation.rs?category=laboratory"], ["Observation.rs"], ["user/Observation"], ["admin/Observation.rs"], [7]] {
		d := decide(with_token(x, bearer(scopes)))
		d.allow == false
		d.reasons == ["token scopes do not permit read Observation"]
	}

	# Scopes never widen: the physician may not delete with any scope.
	del := asks(pr1, object.union(obs_of("p1"), {"action": "delete", "interaction": "delete"}))
	d := decide(with_token(del, bearer(["user/*.cruds"])))
	d.reasons == ["role physician may not delete Observation"]
}

test_scope_letters_per_action if {
	cases := [
		["search", "search-type", "s"],
		["history", "history-type", "s"],
		["history", "history-instance", "r"],
		["create", "create", "c"],
		["update", "update", "u"],
		["patch", "patch", "u"],
	]
	every c in cases {
		r := object.union(obs_of("p1"), {"action": c[0], "interaction": c[1]})
		decide(with_token(asks(pr1, r), bearer([sprintf("user/Observation.%s", [c[2]])]))).allow
		not decide(with_token(asks(pr1, r), bearer(["user/Observation.d"]))).allow
	}

	# No role deletes as shipped: a table that lets one does, with a d.
	del := asks({"roles": ["lab"]}, object.union(obs_of("p1"), {"action": "delete", "interaction": "delete"}))
	decide(with_token(del, bearer(["user/Observation.d"]))).allow with data.chartguard_data.roles.lab.delete as {"Observation": true}
	not decide(with_token(del, bearer(["user/Observation.u"]))).allow with data.chartguard_data.roles.lab.delete as {"Observation": true}
	op := object.union(obs_of("p1"), {"type": "Patient", "action": "operation", "interaction": "operation", "operation": "everything"})
	decide(with_token(asks(pr1, op), bearer(["user/Patient.r"]))).allow
}

test_patient_scopes_stay_with_the_patient_in_context if {
	p9 := {"roles": ["patient"], "patient_links": ["Patient/p9"]}
	decide(with_token(asks(p9, obs_of("p9")), bearer(["patient/*.rs"]))).allow
	decide(with_token(asks(p9, obs_of("p9")), bearer(["patient/Observation.read"]))).allow

	# A clinician's app launched for p1 reaches p1 only.
	launched := {"token": {"kind": "bearer", "scopes": ["patient/*.rs"], "launch_patient": "p1"}}
	decide(object.union(asks(pr1, obs_of("p1")), launched)).allow
	rel := {"relationship": {"p6": {"care_team": true}}}
	not decide(object.union(object.union(asks(pr1, obs_of("p6")), launched), rel)).allow

	# Without a launch patient, a patient/ scope reaches linked patients
	# only, which staff may not open.
	not decide(with_token(asks(pr1, obs_of("p1")), bearer(["patient/*.rs"]))).allow

	# Pending patients and patient-less resources pass to the response.
	pending := object.union(obs_of("p1"), {"patient_status": "unknown", "patients": []})
	decide(with_token(asks(p9, pending), bearer(["patient/*.rs"]))).allow
	prac := {"type": "Practitioner", "action": "read", "interaction": "read", "patient_status": "none", "patients": [], "labels": []}
	decide(with_token(asks(pr1, prac), bearer(["patient/Practitioner.rs"]))).allow
	decide(with_token(asks(pr1, object.union(prac, {"phase": "response"})), bearer(["patient/Practitioner.rs"]))).allow
}

test_unknown_token_kinds_are_refused if {
	every t in [{"token": {"kind": "api-key"}}, {"token": null}] {
		d := decide(object.union(asks(pr1, obs_of("p1")), t))
		d.allow == false
		d.reasons == ["token scopes do not permit read Observation"]
	}
	d := decide(json.remove(asks(pr1, obs_of("p1")), ["token"]))
	d.allow == false
}

# -------------------------------------------------------------- mass access

test_mass_access_limit if {
	x := asks(pr1, obs_of("p1"))

	# Unset: no limit.
	decide(object.union(x, {"usage": {"distinct_patients_window": 100000}})).allow
	every c in [[10, true], [11, false]] {
		d := decide(object.union(x, {"usage": {"distinct_patients_window": c[0]}})) with data.chartguard_data.max_distinct_patients as 10
		d.allow == c[1]
	}
	d := decide(object.union(x, {"usage": {"distinct_patients_window": 11}})) with data.chartguard_data.max_distinct_patients as 10
	d.reasons == ["too many distinct patients accessed in the recent window"]
	d.break_glass.allowed == false
	every bad in [{"usage": {"distinct_patients_window": "3"}}, {"usage": null}] {
		not decide(object.union(x, bad)).allow with data.chartguard_data.max_distinct_patients as 10
	}
}

# ------------------------------------------------------------------- export

export_of(p) := {"type": "Patient", "id": p, "action": "export", "interaction": "operation", "operation": "export", "patient_status": "known", "patients": [p], "labels": []}

him := {"roles": ["him"]}

test_him_exports_with_a_fresh_second_factor if {
	d := decide(asks(him, export_of("p1")))
	d.allow
	d.require_mfa_within_s == 300
	d.obligations.block_export == false

	stale := decide(object.union(asks(him, export_of("p1")), {"session": {"mfa_age_s": 301}}))
	stale.allow == false
	stale.reasons == ["export requires a second factor within the last 300 seconds"]
	stale.require_mfa_within_s == 300
	not decide(object.union(asks(him, export_of("p1")), {"session": {"mfa": false}})).allow
}

test_export_scopes_and_purposes if {
	x := asks(him, export_of("p1"))
	decide(with_token(x, {"token": {"kind": "bearer", "scopes": ["user/Patient.rs"]}, "session": {"mfa": true, "mfa_age_s": 10}})).allow
	not decide(with_token(x, {"token": {"kind": "bearer", "scopes": ["user/Patient.r"]}, "session": {"mfa": true, "mfa_age_s": 10}})).allow

	# A session may state no purpose of use; an empty one is none either.
	# Neither allows an export (test_export_needs_a_stated_purpose).
	not decide(json.remove(x, ["token/purpose_of_use"])).allow
	not decide(object.union(x, {"token": {"purpose_of_use": ""}})).allow

	# A role may export named types only.
	billing := asks({"roles": ["billing"]}, object.union(export_of("p1"), {"type": "Claim"}))
	not decide(billing).allow
	decide(billing).allow with data.chartguard_data.roles.billing.export as {"Claim": true}
}

test_export_needs_role_purpose_and_patient if {
	d := decide(asks(pr1, export_of("p1")))
	d.allow == false
	d.reasons == ["role physician may not export Patient"]

	p := decide(object.union(asks(him, export_of("p1")), {"token": {"purpose_of_use": "HMARKT"}}))
	p.reasons == ["export is not permitted for this purpose of use"]
	decide(object.union(asks(him, export_of("p1")), {"token": {"purpose_of_use": "PATRQT"}})).allow

	all := object.union(export_of("p1"), {"type": "", "patients": [], "patient_status": "unknown"})
	a := decide(asks(him, all))
	a.allow == false
	"export must name a patient" in a.reasons
}

# -------------------------------------------------------------- obligations

ssn := "Patient.identifier[system=http://hl7.org/fhir/sid/us-ssn]"

test_ssn_redacted_except_for_registration if {
	pat := object.union(obs_of("p1"), {"type": "Patient"})
	decide(asks(pr1, pat)).obligations.redact == [ssn]
	decide(asks({"roles": ["lab"]}, pat)).obligations.redact == [ssn]
	decide(asks({"roles": ["registration"]}, pat)).obligations.redact == []
	decide(asks({"roles": ["registration", "billing"]}, pat)).obligations.redact == []
	decide(asks(pr1, obs_of("p1"))).obligations.redact == []
	decide(base).obligations.redact == [ssn]
}

test_block_export_and_max_count if {
	decide(asks(pr1, obs_of("p1"))).obligations.block_export == true
	decide(asks(him, obs_of("p1"))).obligations.block_export == false
	decide(object.union(asks(him, obs_of("p1")), {"token": {"purpose_of_use": "HMARKT"}})).obligations.block_export == true
	decide(base).obligations.max_count == 1000
	decide(asks(pr1, obs_of("p1"))).obligations.max_count == 0
	decide(base).obligations.max_count == 0 with data.chartguard_data.search_max_count as 0
}

test_defaults_when_settings_are_missing if {
	d := decide(asks(him, export_of("p1"))) with data.chartguard_data as json.remove(data.chartguard_data, ["export_mfa_within_s", "redact", "search_max_count"])
	d.allow
	d.require_mfa_within_s == 300
	d.obligations.redact == []
	b := decide(asks(pr1, obs_of("p2"))) with data.chartguard_data as json.remove(data.chartguard_data, ["break_glass_mfa_within_s"])
	b.require_mfa_within_s == 300
}

test_known_actions_are_supported if {
	every a in chartguard.known_actions {
		d := decide(asks(pr1, object.union(obs_of("p1"), {"action": a})))
		not "unsupported action" in d.reasons
	}
	"unsupported action" in decide(asks(pr1, object.union(obs_of("p1"), {"action": "purge"}))).reasons
}

# ---------------------------------------- no break-the-glass for delete, export

# Emergency access is for treating the patient: break-the-glass is never
# offered for a delete or an export, for any role, whatever stood in the
# way (a care relationship, a sensitive label, a VIP).
test_no_break_glass_for_delete_or_export if {
	# him exports a VIP's record for a stated purpose: refused, no offer.
	vip := decide(asks(him, export_of("p7")))
	vip.allow == false
	vip.reasons == ["VIP patient's record"]
	vip.break_glass == {"allowed": false, "reasons": []}
	vip.require_mfa_within_s == 0
	r := decide(asks(him, object.union(export_of("p1"), {"labels": ["R"]})))
	r.allow == false
	r.break_glass.allowed == false

	# An update of the same record still offers it.
	decide(asks(him, object.union(obs_of("p7"), {"action": "update", "interaction": "update"}))).break_glass.allowed

	# Tables that let care-team and other roles delete and export.
	tables := {
		"physician": {"delete": {"*": true}, "export": {"*": true}},
		"nurse": {"delete": {"*": true}, "export": {"*": true}},
		"lab": {"delete": {"Observation": true}, "export": {"Observation": true}},
		"him": {"delete": {"*": true}, "export": {"*": true}},
	}
	every role, perms in tables {
		roles := object.union(data.chartguard_data.roles, {role: perms})
		every action in ["delete", "export"] {
			# Without a care relationship (p2) for a care-team role; a very
			# restricted or sensitive label; a VIP patient.
			every c in [["p2", []], ["p1", ["V"]], ["p7", []], ["p1", ["PSY"]]] {
				res := object.union(obs_of(c[0]), {"action": action, "interaction": action, "labels": c[1]})
				d := decide(asks({"roles": [role], "fhir_user": "Practitioner/pr1"}, res)) with data.chartguard_data.roles as roles
				d.break_glass.allowed == false
				d.allow == expect_allowed(role, c[0])
			}
		}
	}
}

# expect_allowed(role, p) is whether a role may delete or export an
# unlabelled record of p without a break-the-glass grant: a role outside
# the care teams may for p2, nobody for the other cases above.
expect_allowed(role, p) if {
	p == "p2"
	not role in {"physician", "nurse"}
} else := false

# ------------------------------------------------- export needs a purpose

# "block_export unless role and purpose allow": a caller stating no
# purpose of use (absent, or empty) may not export, whatever its role, and
# every allow it gets blocks export.
test_export_needs_a_stated_purpose if {
	x := asks(him, export_of("p1"))
	decide(x).allow
	every y in [json.remove(x, ["token/purpose_of_use"]), object.union(x, {"token": {"purpose_of_use": ""}})] {
		d := decide(y)
		d.allow == false
		d.reasons == ["export requires a stated purpose of use"]
		d.break_glass.allowed == false

		# Reads carry block_export.
		decide(object.union(y, {"resource": {"action": "read", "interaction": "read"}})).obligations.block_export == true

		# A bearer token without a purpose neither.
		b := decide(with_token(y, {"token": {"kind": "bearer", "scopes": ["user/*.*"]}}))
		b.allow == false
		"export requires a stated purpose of use" in b.reasons

		# Nor for any role a table lets export.
		every role in ["physician", "billing", "registration", "lab"] {
			z := object.union(y, {"user": {"roles": [role], "fhir_user": "Practitioner/pr1"}})
			roles := object.union(data.chartguard_data.roles, {role: {"export": {"*": true, "Patient": true}}})
			e := decide(z) with data.chartguard_data.roles as roles
			e.allow == false
			"export requires a stated purpose of use" in e.reasons
		}
	}

	# The purposes that allow it, as shipped.
	every purpose in ["TREAT", "HOPERAT", "HLEGAL", "PATRQT"] {
		decide(object.union(x, {"token": {"purpose_of_use": purpose}})).allow
	}
}
