# Shared fixtures for the policy tests.
package chartguard_test

import data.chartguard

# base is a complete, well-formed input: a physician's session reading one
# known patient's observations.
base := {
	"user": {
		"iss": "https://idp.example.org",
		"sub": "u1",
		"name": "Dr. Example",
		"roles": ["physician"],
		"groups": ["emr-physicians"],
		"fhir_user": "Practitioner/pr1",
	},
	"token": {"kind": "session", "purpose_of_use": "TREAT"},
	"session": {"mfa": true, "mfa_method": "totp", "mfa_age_s": 120, "auth_age_s": 900, "break_glass": []},
	"request": {
		"method": "GET",
		"path": "/fhir/Observation",
		"query": {"patient": ["p1"]},
		"ip": "192.0.2.10",
		"time": "2026-11-25T10:00:00Z",
	},
	"resource": {
		"kind": "fhir",
		"phase": "request",
		"type": "Observation",
		"id": "",
		"patients": ["p1"],
		"patient_status": "known",
		"action": "search",
		"interaction": "search-type",
		"labels": [],
	},
	"relationship": {},
	"usage": {"distinct_patients_window": 1},
}

# mk(roles, resource) is base with the user's roles replaced and the
# resource fields given merged in.
mk(roles, resource) := object.union(base, {"user": {"roles": roles}, "resource": resource})

# decide(x) evaluates the decision for input x.
decide(x) := d if {
	d := chartguard.decision with input as x
}

# Resource fragments.
read(type) := {"type": type, "id": "r1", "action": "read", "interaction": "read", "patient_status": "known", "patients": ["p1"]}

search(type) := {"type": type, "action": "search", "interaction": "search-type", "patient_status": "known", "patients": ["p1"]}

write(action, type) := {"type": type, "id": "r1", "action": action, "interaction": action, "patient_status": "known", "patients": ["p1"]}

unknown_search(type) := {"type": type, "action": "search", "interaction": "search-type", "patient_status": "unknown", "patients": []}

allowed(roles, resource) if decide(mk(roles, resource)).allow == true

# denied_because(roles, resource, reason) holds when the request is denied
# and reason is among the reasons given.
denied_because(roles, resource, reason) if {
	d := decide(mk(roles, resource))
	d.allow == false
	reason in d.reasons
}
