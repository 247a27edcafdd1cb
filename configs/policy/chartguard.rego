# ChartGuard default policy: the decision document.
#
# ChartGuard evaluates data.chartguard.decision once per request (phase
# "request") and once per resource a response exposes (phase "response").
# The input and output shapes are the policy contract in DESIGN.md.
#
# The policy denies by default. A request is allowed only when at least one
# grant applies (permissions.rego) and no hard denial does. Every denial
# carries at least one human-readable reason; reasons name roles, actions and
# resource types, never patients or users, because ChartGuard shows them to
# the caller and copies them word for word into the audit log.
#
# Per-role permissions, the list of clinical types and the behaviour flags
# live in data.json (data.chartguard_data) and reload with this file.
package chartguard

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
	count(grants) > 0
}

# An allow records which grants made it; a deny records why.
reasons := sort(grants) if allow
else := sort(deny_reasons)

# deny_reasons is never empty, so no denial goes out without a reason.
deny_reasons := r if {
	r := denials | missing_grants
	count(r) > 0
} else := {"no rule allows this request"}
