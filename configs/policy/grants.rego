# Grants: granted holds when something allows the request; missing_grants
# says why nothing did. decision (chartguard.rego) restates granted for
# speed; decision_test.rego checks that the two agree.
#
# Per-role permissions come from data.chartguard_data.roles (the shape is
# described in chartguard.rego). A user with several roles gets the union
# of their permissions.
package chartguard

import data.chartguard_data as cfg
import input.resource
import input.user

# authenticated holds when the caller has a verified subject.
authenticated if {
	is_string(user.sub)
	user.sub != ""
}

# has_role holds when the caller has at least one role (a non-empty
# string).
has_role if {
	some role in user.roles
	is_string(role)
	role != ""
}

# FHIR and route requests are decided on the per-role table; capabilities,
# static content and response-phase OperationOutcomes have their own rules.
is_data_request if resource.kind == "route"

is_data_request if {
	resource.kind == "fhir"
	not resource.interaction == "capabilities"
	not response_outcome
}

# Capabilities and static content: every authenticated caller, whatever
# their roles.
granted_without_role if {
	resource.kind == "fhir"
	resource.interaction == "capabilities"
	authenticated
}

granted_without_role if {
	resource.kind == "static"
	authenticated
}

# An OperationOutcome in a response (a single one, or a Bundle entry) is
# the EMR's or ChartGuard's message about the request, such as "2 entries
# withheld": every authenticated caller may see it. It belongs to no
# patient; one the response scan ties to a patient (patient_status not
# "none") is decided like any other resource, and no role lists the type.
granted_without_role if {
	response_outcome
	authenticated
}

# A Bundle inside a response (a batch-response entry answering a search)
# is a container too: ChartGuard decides every resource in it on its own
# and withholds the whole entry when any is denied.
response_outcome if {
	resource.type in {"OperationOutcome", "Bundle"}
	resource.phase == "response"
	resource.patient_status == "none"
	resource.kind == "fhir"
}

granted if granted_without_role

# A data request is granted when one of the caller's roles permits it:
# for a self-only role, only on the caller's own records (patients.rego);
# for a care-team role, only on clinical data of patients whose care team
# the user is on (careteams.rego); and only within the sensitivity of the
# record (labels.rego). (A role that is not a string cannot be a key of
# the roles table, so only the empty role needs excluding here;
# missing_grants, which names roles in reasons, checks is_string too.)
granted if {
	is_data_request
	some role in user.roles
	role != ""
	role_permits(role)
	records_ok(role)
	care_ok(role)
	labels_ok(role)
}

# role_permits(role) holds when the per-role table lets role take the
# request's action on its resource type (or run its operation). The
# lookups come first: they fail soonest. ("*" may not be listed under
# "operation", data_checks.rego, so the first body needs no check that the
# action is not an operation.) It is false rather than undefined
# otherwise, because OPA remembers a function's value for the rest of the
# evaluation only when it is defined: the deny path asks again.
default role_permits(_) := false

role_permits(role) if {
	cfg.roles[role][resource.action]["*"]
	cfg.clinical_types[resource.type]
}

role_permits(role) if {
	cfg.roles[role][resource.action][resource.type]
	resource.type != "*"
	resource.action != "operation"
}

role_permits(role) if {
	resource.action == "operation"
	cfg.roles[role].operation[resource.operation]
	resource.operation != ""
}

# missing_grants says why each of the caller's roles did not grant; it is
# computed only when nothing allowed the request.
missing_grants contains reason if {
	is_data_request
	some role in user.roles
	is_string(role)
	role != ""
	reason := missing_grant(role)
}

# missing_grant(role) says why role did not grant the request. The first
# body gives the second's text for the common actions without building
# what. A very restricted record is named before the care team: no care
# relationship would open it.
missing_grant(role) := sprintf("role %s may not %s %s", [role, resource.action, resource.type]) if {
	not role_permits(role)
	resource.action in {"read", "vread", "search", "create", "update", "patch", "delete"}
	is_string(resource.type)
	resource.type != ""
} else := sprintf("role %s may not %s", [role, what]) if {
	not role_permits(role)
} else := sprintf("role %s may only access the caller's own records", [role]) if {
	not records_ok(role)
} else := "very restricted record" if {
	very_restricted
	not labels_ok(role)
} else := "not on the patient's care team" if {
	not care_ok(role)
} else := "restricted record" if {
	not labels_ok(role)
}
