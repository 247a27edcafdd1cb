# DIAGNOSTIC ONLY — never deploy. Allows every request. The load test runs
# ChartGuard with it (-policy testdata/allow-all-policy) to separate the
# fixed cost of an OPA evaluation from the cost of the default policy's
# rules. The decision has every key of the policy contract.
package chartguard

decision := {
	"allow": true,
	"reasons": [],
	"break_glass": {"allowed": false, "reasons": []},
	"require_mfa_within_s": 0,
	"obligations": {"redact": [], "block_export": false, "max_count": 0, "tags": []},
}
