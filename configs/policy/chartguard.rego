# ChartGuard default policy: the decision document.
#
# ChartGuard evaluates data.chartguard.decision once per request (phase
# "request") and once per resource a response exposes (phase "response").
# The input and output shapes are the policy contract in DESIGN.md.
#
# The policy denies by default. A data request (FHIR or route) is allowed
# when one of the caller's roles grants it (grants.rego: the role table,
# own-record rules in patients.rego, care relationships in careteams.rego,
# sensitivity in labels.rego, break-the-glass grants in breakglass.rego)
# and no request-wide rule refuses it (denials.rego: authentication,
# patients the request must name, SMART scopes in scopes.rego, mass
# access, export conditions). An allow carries obligations
# (obligations.rego); a deny carries reasons, and a break-the-glass offer
# when a role of the caller could open the record with a recorded reason
# (breakglass.rego). Reasons name roles, actions, resource types and
# labels, never patients or users: ChartGuard shows them to the caller and
# copies them word for word into the audit log.
#
# Data: everything site-specific lives in data.json (data.chartguard_data)
# and reloads with this policy. Every list there is an object whose keys
# are the members and whose values are true, so a membership test is one
# lookup; data_checks.rego refuses other shapes at load:
#
#	"roles": {"physician": {"read": {"*": true, "Practitioner": true}, ...}}
#	    role -> action (read, vread, search, history, create, update, patch,
#	    delete, operation, export) -> resource types; "*" stands for every
#	    clinical type; under "operation" the keys are operation names.
#	"clinical_types", "self_only_roles", "care_team_roles",
#	"relationship_types", "care_teams" ({fhir_user: {patient: true}}),
#	"encounter_window_days", "restricted_labels",
#	"very_restricted_labels", "sensitive_labels",
#	"psychotherapy_note_labels", "vip_patients", "employee_patients",
#	"staff_patient_links" ({fhir_user:
#	{patient: true}}, a staff member's own and relatives' records),
#	"sensitivity_exempt_types",
#	"break_glass_roles" ({role: {reason code: true}}),
#	"break_glass_mfa_within_s", "export_mfa_within_s", "export_purposes",
#	"redact" (redaction paths), "redact_exempt_roles", "search_max_count",
#	"max_distinct_patients" (optional), "search_requires_patient".
#
# Phases: the request phase decides what the request itself proves; a FHIR
# read by id or search whose patients only the response shows passes it
# (patients_pending), and the response phase then decides every resource
# the response exposes on its own type, patients and labels.
#
# Undefined safety: rules read input fields directly. A missing or wrongly
# typed field makes the expressions that read it undefined; grants need
# their fields, so a missing field removes a grant, and denials test with
# `not` wherever a missing field must deny. robustness_test.rego holds
# this in place.
#
# Performance: this runs on every request and every resource of every
# response, and OPA pays for each rule, lookup and built-in it evaluates.
# So decision's first body spells out the commonest allow with lookups
# only, membership tests are object lookups, the shape of data.json is
# checked once at load (data_checks.rego), and deny reasons and the
# break-the-glass offer are computed only when the request is denied.
# A decision head that is a constant is returned as it stands (ChartGuard
# parses it once, at load), so the commonest decisions have constant
# heads. (Building the others with object.union would copy them once
# instead of at every rule they pass through, but OPA 1.22's type checker
# then writes to object.union's shared result type at every compile, a
# data race between concurrent compiles.) BenchmarkDecide in package
# policy measures it.
package chartguard

import data.chartguard_data as cfg
import input.resource
import input.user

# decision is always defined and always has every key of the contract.
#
# An allow gives no reasons (the audit event records who did what); a
# deny gives at least one. decision_test.rego checks that decision allows
# exactly when allowed (below) holds, on every combination of its inputs.
decision := {
	"allow": true,
	"reasons": [],
	"break_glass": {"allowed": false, "reasons": []},
	"require_mfa_within_s": 0,
	"obligations": {
		"redact": [],
		"block_export": true,
		"max_count": 0,
		"tags": [],
	},
} if {
	# The most common request, spelled out with lookups only (rule and
	# function calls cost most in OPA): a clinician's browser session
	# reading unlabelled clinical data, other than a Patient resource, of
	# one patient they have a care relationship with. Each line is a
	# condition of allowed below in its cheapest form; the obligations
	# are constant here: no redaction (not a Patient), no count (a read),
	# export blocked (no role of the caller may export), no tag (no label,
	# no VIP or employee patient, no break-the-glass grant at all).
	# Whatever this body does not cover falls to the next ones.
	resource.action in {"read", "vread"}
	resource.type != "Patient"
	fast_path
} else := {
	"allow": true,
	"reasons": [],
	"break_glass": {"allowed": false, "reasons": []},
	"require_mfa_within_s": 0,
	"obligations": {
		"redact": object.get(cfg, "redact", []),
		"block_export": true,
		"max_count": object.get(cfg, "search_max_count", 0),
		"tags": [],
	},
} if {
	# The same for a search (request phase) and each entry of its
	# response: a search may return Patients (_include), so the SSN is
	# redacted (no role of the caller is exempt), and the count capped.
	resource.action == "search"
	not redact_exempt
	fast_path
} else := {
	"allow": true,
	"reasons": [],
	"break_glass": {"allowed": false, "reasons": []},
	"require_mfa_within_s": 0,
	"obligations": {
		"redact": object.get(cfg, "redact", []),
		"block_export": true,
		"max_count": 0,
		"tags": [],
	},
} if {
	# The same for a read of a Patient resource: its SSN is redacted (no
	# role of the caller is exempt), no count.
	resource.action in {"read", "vread"}
	resource.type == "Patient"
	not redact_exempt
	fast_path
} else := d if {
	# The commonest denials, as fast: see fast_denial.
	d := fast_denial
} else := {
	"allow": true,
	"reasons": [],
	"break_glass": {"allowed": false, "reasons": []},
	"require_mfa_within_s": allow_mfa_within_s,
	"obligations": obligations,
} if {
	allowed
} else := {
	"allow": true,
	"reasons": [],
	"break_glass": {"allowed": false, "reasons": []},
	"require_mfa_within_s": 0,
	"obligations": {
		"redact": [],
		"block_export": false,
		"max_count": 0,
		"tags": [],
	},
} if {
	# Capabilities, static content and response-phase OperationOutcomes:
	# nothing to redact, count or tag. Malformed labels deny here too.
	granted_without_role
	not malformed_labels
} else := general_denial

# general_denial gives every reason the request is denied, the
# break-the-glass offer and the tags. decision_test.rego checks that every
# deny decision equals it.
general_denial := {
	"allow": false,
	"reasons": sort(deny_reasons),
	"break_glass": break_glass_offer,
	"require_mfa_within_s": deny_mfa_within_s,
	"obligations": {
		"redact": [],
		"block_export": false,
		"max_count": 0,
		"tags": sort(tags),
	},
}

# allow is the decision's verdict.
allow := decision.allow

no_break_glass := {"allowed": false, "reasons": []}

# allowed holds for a data request that a role of the caller grants and no
# request-wide rule refuses (the positive form of every denial in
# denials.rego that can apply to a granted data request). Cheap
# request-wide conditions come first.
allowed if {
	is_data_request
	is_string(user.sub)
	user.sub != ""
	scopes_ok
	within_mass_limit
	not malformed_labels
	is_array(user.roles)
	some role in user.roles
	role != ""
	role_grants(role)
	not patients_unnamed
	not patients_undetermined
	export_ok
}

# deny_reasons is never empty, so no denial goes out without a reason.
deny_reasons := r if {
	r := denials | missing_grants
	count(r) > 0
} else := {"no rule allows this request"}

# what describes the request in reasons, e.g. "read Observation".
what := concat(" ", [verb, type_label])

verb := sprintf("run operation $%s on", [resource.operation]) if {
	resource.action == "operation"
	is_string(resource.operation)
	resource.operation != ""
} else := "run an unnamed operation on" if {
	resource.action == "operation"
} else := "read the history of" if {
	resource.action == "history"
} else := resource.action if {
	is_string(resource.action)
} else := "(no action)"

type_label := resource.type if {
	is_string(resource.type)
	resource.type != ""
} else := "all resource types"

# fast_path holds the conditions shared by the fast allow bodies of
# decision (see the first): a role of the caller that may take the action
# on every clinical type, is not self-only, and the care relationship.
# Under fast_patient these are all that role_grants and the denials
# check. The lookups come first, as they fail soonest.
fast_path if {
	cfg.clinical_types[resource.type]
	some role in user.roles
	cfg.roles[role][resource.action]["*"]
	role != "patient"
	not cfg.self_only_roles[role]
	not exporting_role
	related(fast_patient)
}

# fast_patient is the one patient of a request of the shape the fast
# bodies of decision and fast_denial decide: a FHIR request by an
# authenticated caller with a fast credential, of one known patient who
# is neither a VIP nor an employee nor the caller, with no sensitive
# label, where the caller has no linked records (patient_links or
# staff_patient_links) and holds no
# break-the-glass grant, and no mass-access limit is set. Under these,
# no request-wide denial applies to a read, search or write, and only the
# role table and the care relationship decide.
#
# Wrongly typed fields fail these tests or send the request the general
# way; none raises an error (the engine treats built-in errors as
# errors): the caller's own record is found by comparing fhir_user, not
# by a string function.
fast_patient := patient if {
	fast_credential
	resource.kind == "fhir"
	is_array(user.roles)
	fast_labels
	is_string(user.sub)
	user.sub != ""
	resource.patient_status == "known"
	[patient] := resource.patients
	is_string(patient)
	not cfg.vip_patients[patient]
	not cfg.employee_patients[patient]
	not user.patient_links
	not cfg.staff_patient_links[user.fhir_user]
	input.session.break_glass in {null, []}
	not cfg.max_distinct_patients
	not patient_user
}

# fast_denial decides, for a caller with one role and a request
# fast_patient takes, the two commonest denials as general_denial would
# (decision_test.rego checks this):
#
#   - a care-team role the table lets take the action, without a care
#     relationship with the patient: the reason, and the offer of
#     break-the-glass with the role's reason codes (a role that may not
#     break glass, a delete and a write to a relationship type, which
#     break-the-glass does not open, go the general way);
#   - a role the table does not let take the action on the type.
fast_denial := {
	"allow": false,
	"reasons": ["not on the patient's care team"],
	"break_glass": {"allowed": true, "reasons": codes},
	"require_mfa_within_s": break_glass_mfa_within_s,
	"obligations": {
		"redact": [],
		"block_export": false,
		"max_count": 0,
		"tags": [],
	},
} if {
	[role] := user.roles
	cfg.roles[role][resource.action]["*"]
	cfg.clinical_types[resource.type]
	cfg.care_team_roles[role]
	role != "patient"
	not cfg.self_only_roles[role]
	resource.action in {"read", "vread", "search", "history", "create", "update", "patch"}
	patient := fast_patient
	not related(patient)
	not relationship_write
	codes := sort(object.keys(cfg.break_glass_roles[role]))
	codes != []
} else := {
	"allow": false,
	"reasons": [sprintf("role %s may not %s %s", [role, resource.action, resource.type])],
	"break_glass": {"allowed": false, "reasons": []},
	"require_mfa_within_s": 0,
	"obligations": {
		"redact": [],
		"block_export": false,
		"max_count": 0,
		"tags": [],
	},
} if {
	[role] := user.roles
	is_string(role)
	role != ""
	resource.action in {"read", "vread", "search", "create", "update", "patch", "delete"}
	is_string(resource.type)
	not resource.type in {"", "*"}
	not cfg.roles[role][resource.action]["*"]
	not cfg.roles[role][resource.action][resource.type]
	not resource.interaction == "capabilities"
	fast_patient
}

# exporting_role holds when a role of the caller may export (block_export
# is then not constant).
exporting_role if {
	some r in user.roles
	cfg.roles[r].export
}

# patient_user holds when the caller's fhir_user is a Patient reference
# (a string starting "Patient/"), written as comparisons, which raise no
# error on other types.
patient_user if {
	user.fhir_user >= "Patient/"
	user.fhir_user < "Patient0"
}

# fast_labels holds when the resource carries no label that labels.rego
# treats as sensitive (most clinical data is unlabelled or "N", normal).
# It reads the same three sets as is_sensitive_label, so data that makes
# a label sensitive takes it off the fast path too.
fast_labels if resource.labels == []

fast_labels if {
	is_array(resource.labels)
	every label in resource.labels {
		is_string(label)
		not cfg.restricted_labels[label]
		not cfg.very_restricted_labels[label]
		not cfg.sensitive_labels[label]
	}
}

# fast_credential holds for the credentials the fast bodies of decision
# take: ChartGuard's own browser session (no scope constraint), or a
# bearer token with a user/ or system/ scope on every type (*) that
# grants the action (scopes.rego). Any other scope, such as a type's own
# (user/Observation.rs) or a patient/ one, goes the general way, which
# decides it the same, only slower. A lookup in the constant below is
# cheaper than scope_covers' string functions.
fast_credential if input.token.kind == "session"

fast_credential if {
	input.token.kind == "bearer"
	some scope in input.token.scopes
	fast_scopes[resource.action][scope]
}

# fast_scopes lists, by action, the wildcard scopes that cover it: SMART
# v2 permission letters in order (c r u d s) that include r (read) or s
# (search), and SMART v1 read and *.
fast_scopes := {
	"read": {
		"system/*.*": true,
		"system/*.cr": true,
		"system/*.crd": true,
		"system/*.crds": true,
		"system/*.crs": true,
		"system/*.cru": true,
		"system/*.crud": true,
		"system/*.cruds": true,
		"system/*.crus": true,
		"system/*.r": true,
		"system/*.rd": true,
		"system/*.rds": true,
		"system/*.read": true,
		"system/*.rs": true,
		"system/*.ru": true,
		"system/*.rud": true,
		"system/*.ruds": true,
		"system/*.rus": true,
		"user/*.*": true,
		"user/*.cr": true,
		"user/*.crd": true,
		"user/*.crds": true,
		"user/*.crs": true,
		"user/*.cru": true,
		"user/*.crud": true,
		"user/*.cruds": true,
		"user/*.crus": true,
		"user/*.r": true,
		"user/*.rd": true,
		"user/*.rds": true,
		"user/*.read": true,
		"user/*.rs": true,
		"user/*.ru": true,
		"user/*.rud": true,
		"user/*.ruds": true,
		"user/*.rus": true,
	},
	"vread": {
		"system/*.*": true,
		"system/*.cr": true,
		"system/*.crd": true,
		"system/*.crds": true,
		"system/*.crs": true,
		"system/*.cru": true,
		"system/*.crud": true,
		"system/*.cruds": true,
		"system/*.crus": true,
		"system/*.r": true,
		"system/*.rd": true,
		"system/*.rds": true,
		"system/*.read": true,
		"system/*.rs": true,
		"system/*.ru": true,
		"system/*.rud": true,
		"system/*.ruds": true,
		"system/*.rus": true,
		"user/*.*": true,
		"user/*.cr": true,
		"user/*.crd": true,
		"user/*.crds": true,
		"user/*.crs": true,
		"user/*.cru": true,
		"user/*.crud": true,
		"user/*.cruds": true,
		"user/*.crus": true,
		"user/*.r": true,
		"user/*.rd": true,
		"user/*.rds": true,
		"user/*.read": true,
		"user/*.rs": true,
		"user/*.ru": true,
		"user/*.rud": true,
		"user/*.ruds": true,
		"user/*.rus": true,
	},
	"search": {
		"system/*.*": true,
		"system/*.cds": true,
		"system/*.crds": true,
		"system/*.crs": true,
		"system/*.cruds": true,
		"system/*.crus": true,
		"system/*.cs": true,
		"system/*.cuds": true,
		"system/*.cus": true,
		"system/*.ds": true,
		"system/*.rds": true,
		"system/*.read": true,
		"system/*.rs": true,
		"system/*.ruds": true,
		"system/*.rus": true,
		"system/*.s": true,
		"system/*.uds": true,
		"system/*.us": true,
		"user/*.*": true,
		"user/*.cds": true,
		"user/*.crds": true,
		"user/*.crs": true,
		"user/*.cruds": true,
		"user/*.crus": true,
		"user/*.cs": true,
		"user/*.cuds": true,
		"user/*.cus": true,
		"user/*.ds": true,
		"user/*.rds": true,
		"user/*.read": true,
		"user/*.rs": true,
		"user/*.ruds": true,
		"user/*.rus": true,
		"user/*.s": true,
		"user/*.uds": true,
		"user/*.us": true,
	},
}
