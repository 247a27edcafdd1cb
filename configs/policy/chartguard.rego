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
# Per-role permissions, the list of clinical types and the behaviour flags
# live in data.json (data.chartguard_data) and reload with this policy.
#
# Undefined safety: rules read input fields directly (input.resource.kind,
# ...). A missing or wrongly typed field makes the expressions that read it
# undefined. Grants need their fields, so a missing field removes a grant;
# denials test with `not` wherever a missing field must deny.
# robustness_test.rego holds this in place.
#
# Performance: this runs on every request and every resource of every
# response, so rules read input and data directly, the allow path stops at
# the first grant (granted is a complete rule, evaluated with early exit),
# and reason strings are built only for denials.
package chartguard

import input.resource

# decision is always defined and always has every key of the contract.
decision := {
	"allow": allow,
	"reasons": reasons,
	"break_glass": {"allowed": false, "reasons": []},
	"require_mfa_within_s": 0,
	"obligations": {
		"redact": [],
		"block_export": false,
		"max_count": 0,
		"tags": [],
	},
}

default allow := false

allow if {
	count(denials) == 0
	granted
}

# A deny says why. An allow gives no reasons: the audit event already
# records who did what, and skipping them keeps the allow path short.
reasons := [] if {
	allow
} else := sort(deny_reasons)

# deny_reasons is never empty, so no denial goes out without a reason.
deny_reasons := r if {
	r := denials | missing_grants
	count(r) > 0
} else := {"no rule allows this request"}

# what describes the request in reasons, e.g. "read Observation".
what := sprintf("run %s on %s", [operation_label, type_label]) if {
	resource.action == "operation"
} else := sprintf("%s %s", [action_label, type_label])

action_label := "read the history of" if {
	resource.action == "history"
} else := resource.action if {
	is_string(resource.action)
} else := "(no action)"

type_label := resource.type if {
	is_string(resource.type)
	resource.type != ""
} else := "all resource types"

operation_label := sprintf("operation $%s", [resource.operation]) if {
	is_string(resource.operation)
	resource.operation != ""
} else := "an unnamed operation"
