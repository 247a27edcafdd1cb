# Obligations: conditions an allow carries, and tags on every decision.
#
#   - redact: the paths in data.chartguard_data.redact (as shipped, the US
#     SSN identifier of Patient) on any allow that can return a Patient (a
#     Patient itself, or a search, history, operation or export, whose
#     results can include one), unless a role of the caller is in
#     redact_exempt_roles (registration as shipped: it keeps the SSN for
#     identity matching and insurance).
#   - block_export: true unless a role of the caller may export the type
#     (the "export" action in the role table; him as shipped) and the
#     token states a purpose of use in export_purposes (no purpose, no
#     export).
#   - max_count: search_max_count on searches and histories (0: no cap).
#   - require_mfa_within_s: export_mfa_within_s on an allowed export; on a
#     deny, see deny_mfa_within_s (breakglass.rego).
#   - tags (allow and deny; the audit event copies them to decision.tags
#     for alerts): "vip" and "employee" when a patient of the resource is
#     on those lists (exempt types too: the access is still to a VIP's
#     data), "sensitive" for a sensitive label, "break-glass" for
#     access under an active grant.
package chartguard

import data.chartguard_data as cfg
import input.resource
import input.user

obligations := {
	"redact": redact,
	"block_export": block_export,
	"max_count": max_count,
	"tags": sort(tags),
}

redact := object.get(cfg, "redact", []) if {
	may_return_patient
	not redact_exempt
} else := []

may_return_patient if resource.type == "Patient"

may_return_patient if resource.action in {"search", "history", "operation", "export"}

redact_exempt if {
	some role in user.roles
	cfg.redact_exempt_roles[role]
}

default block_export := true

block_export := false if {
	some role in user.roles
	cfg.roles[role].export
	may_export(role)
	purpose_allows_export
}

# may_export(role) holds when role may export the resource's type.
may_export(role) if {
	cfg.roles[role].export["*"]
	cfg.clinical_types[resource.type]
} else if {
	cfg.roles[role].export[resource.type]
}

# purpose_allows_export holds when the token states a purpose of use in
# export_purposes. No purpose, or an empty one, allows no export (a
# browser session states none); false, null or another type is a
# malformed purpose, which allows nothing either.
purpose_allows_export if cfg.export_purposes[input.token.purpose_of_use]

# no_purpose_of_use holds when the token states no purpose of use: the key
# is absent or the empty string (false, null and other types are
# malformed purposes, refused as not permitted).
no_purpose_of_use if {
	not input.token.purpose_of_use
	not input.token.purpose_of_use == false
}

no_purpose_of_use if input.token.purpose_of_use == ""

max_count := object.get(cfg, "search_max_count", 0) if {
	resource.action == "search"
} else := object.get(cfg, "search_max_count", 0) if {
	resource.action == "history"
	not resource.interaction == "history-instance"
} else := 0

allow_mfa_within_s := export_mfa_within_s if resource.action == "export"

else := 0

export_mfa_within_s := object.get(cfg, "export_mfa_within_s", 300)

# mfa_fresh(s) holds when the session's second factor is at most s seconds
# old.
mfa_fresh(s) if {
	input.session.mfa == true
	is_number(input.session.mfa_age_s)
	input.session.mfa_age_s <= s
}

tags contains "vip" if vip_patient

tags contains "employee" if employee_patient

tags contains "sensitive" if sensitive_label

tags contains "break-glass" if break_glass_used
