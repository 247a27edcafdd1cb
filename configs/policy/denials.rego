# Denials: request-wide reasons to refuse, whatever a role grants.
#
# denials is the set of reasons why the request must be denied whatever
# grants it. It is computed only to explain a deny: allowed
# (chartguard.rego) restates its conditions in positive form. None of
# these can be lifted by break-the-glass.
package chartguard

import data.chartguard_data as cfg
import input.resource
import input.user

# "not authenticated" if not authenticated, in three bodies that need no
# rule: the subject is missing (or false), not a string, or empty.
denials contains "not authenticated" if not user.sub

denials contains "not authenticated" if not is_string(user.sub)

denials contains "not authenticated" if user.sub == ""

denials contains "unsupported resource kind" if {
	not resource.kind in {"fhir", "route", "static"}
}

denials contains "no role" if {
	is_data_request
	not has_role
}

# The actions of known_actions (grants.rego), written out: a literal set
# costs nothing per request, a rule is evaluated.
denials contains "unsupported action" if {
	is_data_request
	not resource.action in {"read", "vread", "search", "history", "create", "update", "patch", "delete", "operation", "export"}
}

denials contains "malformed resource labels" if malformed_labels

denials contains "the resource's patients could not be determined" if patients_undetermined

# patients_undetermined holds for a resource in a response that belongs to
# patients ChartGuard could not identify (patient_status "unknown": a
# contained Patient, or a reference it cannot resolve or read). No role
# may see it: the policy cannot rule out a VIP, an employee or the
# caller's own record, nor show a care relationship. (Input without a
# phase is decided as a response, as patients_pending has it.)
patients_undetermined if {
	not resource.phase == "request"
	resource.patient_status == "unknown"
	is_data_request
}

denials contains sprintf("token scopes do not permit %s", [what]) if {
	is_data_request
	not scopes_ok
}

# Mass access: a user who has touched more distinct patients in the
# recent window (input.usage.distinct_patients_window, counted by
# ChartGuard) than data.chartguard_data.max_distinct_patients is refused
# any further patient data until the window moves on. Without the setting
# there is no limit.
#
# Security: catches scripted or curious browsing that each single request
# would allow (a "patient list" walk). A count that is missing or not a
# number denies while a limit is set. Accepted risk: the limit is per user
# and per window as ChartGuard counts them, not per role or department.
denials contains "too many distinct patients accessed in the recent window" if {
	is_data_request
	not within_mass_limit
}

default within_mass_limit := false

within_mass_limit if {
	not cfg.max_distinct_patients
} else if {
	is_number(input.usage.distinct_patients_window)
	input.usage.distinct_patients_window <= cfg.max_distinct_patients
}

# Export ($export and its status polls): a role's grant is not enough.
# The caller's second factor must be fresh (export_mfa_within_s), and the
# purpose of use must allow it (obligations.rego, block_export).
default export_ok := false

export_ok if {
	not resource.action == "export"
} else if {
	mfa_fresh(export_mfa_within_s)
	not block_export
}

denials contains sprintf("export requires a second factor within the last %d seconds", [export_mfa_within_s]) if {
	resource.action == "export"
	not mfa_fresh(export_mfa_within_s)
}

# A caller that states no purpose of use (a browser session, or a token
# without one) may not export: "block_export unless role and purpose
# allow" needs a purpose to allow it.
denials contains "export requires a stated purpose of use" if {
	resource.action == "export"
	no_purpose_of_use
}

denials contains "export is not permitted for this purpose of use" if {
	resource.action == "export"
	not no_purpose_of_use
	not purpose_allows_export
}

denials contains "search must name a patient" if {
	resource.action in {"search", "history"}
	patients_unnamed
}

denials contains "operation must name a patient" if {
	resource.action == "operation"
	patients_unnamed
}

denials contains "export must name a patient" if {
	resource.action == "export"
	patients_unnamed
}

denials contains "write must name a patient" if {
	resource.action in {"create", "update", "patch", "delete"}
	patients_unnamed
}

# patients_unnamed holds for a request that must name the patients it
# touches and does not. These are request-phase rules: in the response
# phase each resource is decided on its own patients (care_ok, records_ok),
# so they hold for any phase but "response".
#
# Searches and histories over clinical data (or over every type) must name
# the patients they touch, unless the response phase decides each entry:
# for a FHIR request in the request phase when
# data.chartguard_data.search_requires_patient is false (only an explicit
# false; missing data keeps the rule). A route's response is not checked
# per resource, so a route search must always name its patients. The
# history of one resource (history-instance) is not a search: like a read
# by id, it is decided again on each version in the response phase.
patients_unnamed if {
	resource.action in {"search", "history"}
	not names_patients
	is_data_request
	not resource.interaction == "history-instance"
	bulk_scope
	not resource.phase == "response"
	not search_deferred
}

# Operations and exports over clinical data (or the whole server) must
# name the patients they touch, whatever the flag says: a bulk export of
# every patient is not something a role grants.
patients_unnamed if {
	resource.action in {"operation", "export"}
	not names_patients
	is_data_request
	bulk_scope
	not resource.phase == "response"
}

# Writes must name their patients: ChartGuard proves them from the body
# and the current version before it asks. A write it could not prove (a
# conditional create, update, patch or delete, say) is denied rather than
# trusted, whatever the type: a Claim, Account, Coverage, Appointment or
# RelatedPerson belongs to a patient as much as an Observation does.
# Only a write to a non-clinical type that holds no patient data
# (patient_status "none", as ChartGuard classifies Practitioner, Location,
# ...) names no patient by nature. Creating a Patient is the other
# exception: the new record belongs to no patient yet.
patients_unnamed if {
	resource.action in {"create", "update", "patch", "delete"}
	not names_patients
	is_data_request
	write_needs_patient
	not resource.phase == "response"
	not new_patient
}

# write_needs_patient holds for a write to clinical data (or every type),
# and for a write to any type whose patients ChartGuard could not
# determine (anything but patient_status "none").
write_needs_patient if bulk_scope

write_needs_patient if not resource.patient_status == "none"

search_deferred if {
	resource.phase == "request"
	resource.kind == "fhir"
	cfg.search_requires_patient == false
}

new_patient if {
	resource.action == "create"
	resource.type == "Patient"
}

# bulk_scope holds when the request reaches clinical data or every type.
bulk_scope if cfg.clinical_types[resource.type]

bulk_scope if not resource.type

bulk_scope if resource.type == ""
