# Break-the-glass (HIPAA 164.312(a)(2)(ii), emergency access): grants that
# open a record, and the offer of one on a deny.
#
# A grant is an entry of input.session.break_glass ({grant, patient,
# reason, expires_at}) that ChartGuard records when the user asks for one
# with a reason and a fresh second factor. It is active while expires_at
# is after input.request.time (both RFC 3339). An active grant for a
# patient stands in for the care relationship (careteams.rego) and opens
# sensitive records (labels.rego), for the roles in
# data.chartguard_data.break_glass_roles only. It never widens the role
# table, never opens the caller's own or a linked record (patients.rego),
# and never lifts a request-wide denial (denials.rego).
#
# The offer: a deny says break_glass.allowed true, with the reason codes
# the caller may give (the union over their roles of break_glass_roles),
# when some role of the caller is in break_glass_roles, may take the
# action on the type, may touch the records, and only the care
# relationship or the sensitivity stood in the way, and a grant would
# open the request. Starting a grant needs a second factor at most
# break_glass_mfa_within_s old (require_mfa_within_s of the deny).
#
# Never offered: for a delete or an export (emergency access is for
# treating the patient, not for destroying or carrying off the record),
# nor for a write to a type care relationships derive from
# (relationship_types, careteams.rego) that lacks the relationship, which
# no grant stands in for.
package chartguard

import data.chartguard_data as cfg
import input.resource
import input.user

# break_glass_open(role, p) holds when role may break glass and the
# session holds an active grant for patient p.
#
# Security: an expires_at (or request time) that is not a string, or not
# in the years time_ns counts, is no grant; one that is not RFC 3339
# raises an error, which denies the request (the engine treats built-in
# errors as errors, not as undefined).
break_glass_open(role, p) if {
	cfg.break_glass_roles[role]
	some g in input.session.break_glass
	g.patient == p
	request_time_ns < time_ns(g.expires_at)
}

request_time_ns := time_ns(input.request.time)

# time_ns(s) is RFC 3339 time s in nanoseconds since 1970, for the years
# 1900 to 2199 (a zero Go time, year 1, is outside what the built-in can
# count in 64 bits, and is no time at all here).
time_ns(s) := time.parse_rfc3339_ns(s) if {
	is_string(s)
	regex.match(`^(19|20|21)[0-9][0-9]-`, s)
}

# break_glass_used holds when the caller holds an active grant for a
# patient of the resource: every access under a grant is tagged
# "break-glass" (obligations.rego) for the privacy office's review, whether
# or not the grant was what opened this resource.
break_glass_used if {
	input.session.break_glass[0]
	some p in resource.patients
	some role in user.roles
	break_glass_open(role, p)
}

# break_glass_offer is the deny's offer (see the package comment).
break_glass_offer := {"allowed": true, "reasons": sort(codes)} if {
	count(denials) == 0
	names_patients
	codes := {code |
		some role in user.roles
		breakable(role)
		some code, _ in cfg.break_glass_roles[role]
	}
	count(codes) > 0
} else := no_break_glass

# breakable(role) holds when only the care relationship or the
# sensitivity kept role from granting the request.
breakable(role) if {
	is_string(role)
	cfg.break_glass_roles[role]
	not resource.action in {"delete", "export"}
	role_permits(role)
	records_ok(role)
	not relationship_needed(role)
}

# relationship_needed(role) holds when role needs a care relationship for
# a write to a relationship type and lacks it with a patient of the
# resource: a grant would not open the request.
relationship_needed(role) if {
	relationship_write
	cfg.care_team_roles[role]
	some p in resource.patients
	not related(p)
}

# deny_mfa_within_s asks for a fresh second factor on a deny that offers
# break-the-glass (to start the grant) or that refused an export for want
# of one (to step up and retry).
deny_mfa_within_s := break_glass_mfa_within_s if {
	break_glass_offer.allowed
} else := export_mfa_within_s if {
	resource.action == "export"
	not mfa_fresh(export_mfa_within_s)
} else := 0

break_glass_mfa_within_s := object.get(cfg, "break_glass_mfa_within_s", 300)
