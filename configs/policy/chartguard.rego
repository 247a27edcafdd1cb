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
# Data: per-role permissions, the clinical types and the behaviour flags
# live in data.json (data.chartguard_data) and reload with this policy.
# Every list there is an object whose keys are the members and whose
# values are true, so a membership test is one lookup (ChartGuard refuses
# to load other shapes, data_checks.rego):
#
#	"clinical_types":  {"Observation": true, ...}
#	"self_only_roles": {"patient": true}
#	"roles": {"physician": {"read": {"*": true, "Practitioner": true}, ...}}
#
# roles maps a role, then an audit action (read, vread, search, history,
# create, update, patch, delete), to the resource types it may take that
# action on; "*" stands for every clinical type. The "operation" key
# lists FHIR operation names (without "$") instead. An absent key grants
# nothing. self_only_roles may only touch their own records ("patient"
# always is). "search_requires_patient": false switches off the rule that
# searches over clinical data must name a patient.
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
	# The most common request, spelled out: a FHIR request that a role
	# grants on every clinical type ("*"), for a clinical type, by a role
	# that is not self-only. The same conditions as the next body with
	# role_permits and records_ok inlined (no function calls, which cost
	# most in OPA); whatever this body does not cover falls to the next.
	resource.kind == "fhir"
	some role in user.roles
	cfg.roles[role][resource.action]["*"]
	cfg.clinical_types[resource.type]
	role != "patient"
	not cfg.self_only_roles[role]
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
	# A data request: a role of the caller permits it (on the caller's
	# own records for a self-only role), the caller is authenticated, and
	# a search or operation names its patients. The other denials cannot
	# apply then: the kind is fhir or route, the caller has a role, and
	# the action is known, since the roles table lists only known actions
	# (data_checks.rego).
	is_data_request
	some role in user.roles
	role != ""
	role_permits(role)
	records_ok(role)
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
	# Capabilities and static content: no denial applies to them once the
	# caller is authenticated.
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
