# ChartGuard default policy: the decision document.
#
# ChartGuard evaluates data.chartguard.decision once per request (phase
# "request") and once per resource a response exposes (phase "response").
# The input and output shapes are the policy contract in DESIGN.md.
#
# The policy denies by default. A request is allowed only when a grant
# applies (grants.rego) and no hard denial does (denials.rego). Every
# denial carries at least one human-readable reason; reasons name roles,
# actions and resource types, never patients or users, because ChartGuard
# shows them to the caller and copies them word for word into the audit log.
#
# Data: per-role permissions, the clinical types, the care-team and
# sensitivity settings and the behaviour flags live in data.json
# (data.chartguard_data) and reload with this policy. Every list there is
# an object whose keys are the members and whose values are true, so a
# membership test is one lookup (ChartGuard refuses to load other shapes,
# data_checks.rego):
#
#	"clinical_types":  {"Observation": true, ...}
#	"self_only_roles": {"patient": true}
#	"roles": {"physician": {"read": {"*": true, "Practitioner": true}, ...}}
#	"care_team_roles": {"physician": true, "nurse": true}
#	"care_teams": {"Practitioner/pr1": {"p1": true, ...}, ...}
#	"restricted_labels": {"R": true}
#	"very_restricted_labels": {"V": true}
#
# roles maps a role, then an audit action (read, vread, search, history,
# create, update, patch, delete), to the resource types it may take that
# action on; "*" stands for every clinical type. The "operation" key
# lists FHIR operation names (without "$") instead. An absent key grants
# nothing. self_only_roles may only touch their own records ("patient"
# always is). care_team_roles need a care relationship with every patient
# of clinical data (careteams.rego): care_teams, keyed by user.fhir_user,
# or input.relationship. restricted_labels and very_restricted_labels are
# meta.security codes (labels.rego). "search_requires_patient": true
# restores the rule that searches over clinical data must name a patient
# at the request phase; false (the shipped value) lets the response phase
# decide each entry.
#
# Phases: the request phase decides what the request itself proves; a FHIR
# read by id or search whose patients only the response shows passes it
# (patients_pending), and the response phase then decides every resource
# the response exposes on its own type, patients and labels.
#
# Undefined safety: rules read input fields directly (input.resource.kind,
# ...). A missing or wrongly typed field makes the expressions that read it
# undefined. Grants need their fields, so a missing field removes a grant;
# denials test with `not` wherever a missing field must deny.
# robustness_test.rego holds this in place.
#
# Performance: this runs on every request and every resource of every
# response, and OPA pays for each rule, lookup and built-in it evaluates.
# So decision restates the grant and the absence of every denial in one
# body (see its comment), membership tests are object lookups, the shape
# of data.json is checked once at load (data_checks.rego) instead of on
# every request, and the denials set and the reason strings are computed
# only when the request is denied. BenchmarkDecide in package policy
# measures it.
package chartguard

import data.chartguard_data as cfg
import input.resource
import input.user

# decision is always defined and always has every key of the contract.
#
# It allows when a grant applies (granted, grants.rego) and no denial does
# (denials, denials.rego), written as one body per kind of grant that
# checks the grant and the positive form of every denial that can apply to
# it. So the allow path evaluates no denial and builds nothing: an allow is
# a constant document. Only a deny computes its reasons. An allow gives no
# reasons: the audit event already records who did what.
# decision_test.rego checks that allow is exactly granted with no
# denials, on every combination of its test inputs.
decision := {
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
	# The most common request, spelled out: a role that is not self-only
	# taking an action it has on every clinical type ("*"), on unlabelled
	# clinical data of one patient whose static care team the user is on.
	# The same conditions as the next body with role_permits, records_ok,
	# care_ok and labels_ok inlined (no rule or function calls, which cost
	# most in OPA): a user on the care team passes care_ok whether or not
	# the role is a care-team role, no label means labels_ok, and the
	# patient is known, so no patients_unnamed denial applies. Whatever
	# this body does not cover (several patients, labels, care
	# relationships from input.relationship, ...) falls to the next.
	resource.kind == "fhir"
	not resource.labels[0]
	some role in user.roles
	cfg.roles[role][resource.action]["*"]
	cfg.clinical_types[resource.type]
	role != "patient"
	not cfg.self_only_roles[role]
	is_string(user.sub)
	user.sub != ""
	resource.patient_status == "known"
	[patient] := resource.patients
	cfg.care_teams[user.fhir_user][patient]
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
	# The same for labelled clinical data (the response phase sees labels):
	# no label may be very restricted, and a restricted label is only for
	# a care-team role on the care team (labels_ok's third body), so the
	# role must be one. Spelled out for the same reason as the body above.
	resource.kind == "fhir"
	some role in user.roles
	cfg.roles[role][resource.action]["*"]
	cfg.clinical_types[resource.type]
	cfg.care_team_roles[role]
	role != "patient"
	not cfg.self_only_roles[role]
	is_string(user.sub)
	user.sub != ""
	resource.patient_status == "known"
	[patient] := resource.patients
	cfg.care_teams[user.fhir_user][patient]
	every label in resource.labels {
		not cfg.very_restricted_labels[label]
	}
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
	# A data request: a role of the caller permits it (on the caller's
	# own records for a self-only role, for patients whose care team the
	# user is on for a care-team role, within the record's sensitivity),
	# the caller is authenticated, and a search, operation or write names
	# its patients where it must. The other denials cannot apply then: the
	# kind is fhir or route, the caller has a role, and the action is
	# known, since the roles table lists only known actions
	# (data_checks.rego).
	is_data_request
	some role in user.roles
	role != ""
	role_permits(role)
	records_ok(role)
	care_ok(role)
	labels_ok(role)
	is_string(user.sub)
	user.sub != ""
	not patients_unnamed
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
	# no denial applies to them once the caller is authenticated.
	granted_without_role
} else := {
	"allow": false,
	"reasons": sort(deny_reasons),
	"break_glass": {"allowed": false, "reasons": []},
	"require_mfa_within_s": 0,
	"obligations": {
		"redact": [],
		"block_export": false,
		"max_count": 0,
		"tags": [],
	},
}

# allow is the decision's verdict.
allow := decision.allow

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
