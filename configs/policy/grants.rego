# Grants: what a role may do, and why it did not.
#
# A data request is granted through a role when the role table
# (data.chartguard_data.roles) lets the role take the action on the type,
# the records are ones the role may touch (patients.rego: a self-only role
# only the caller's own, any other role never the caller's own or a linked
# record), the care relationship holds (careteams.rego) and the record's
# sensitivity allows it (labels.rego); the last two also hold under an
# active break-the-glass grant (breakglass.rego). A user with several roles
# gets the union of what each role grants. missing_grants says why each
# role did not grant; it is computed only when nothing allowed the request.
package chartguard

import data.chartguard_data as cfg
import input.resource
import input.user

# known_actions are the audit actions a data request may have.
known_actions := {"read", "vread", "search", "history", "create", "update", "patch", "delete", "operation", "export"}

# authenticated holds when the caller has a verified subject.
authenticated if {
	is_string(user.sub)
	user.sub != ""
}

# has_role holds when the caller has at least one role (a non-empty
# string). Role names are compared exactly: "Physician" or " physician"
# is no role of the table and grants nothing.
has_role if {
	is_array(user.roles)
	some role in user.roles
	is_string(role)
	role != ""
}

# FHIR and route requests are decided on the per-role table; capabilities,
# static content and response-phase OperationOutcomes have their own rules.
is_data_request if resource.kind == "route"

is_data_request if {
	resource.kind == "fhir"
	not capabilities_request
	not response_outcome
}

# Capabilities and static content: every authenticated caller, whatever
# their roles.
granted_without_role if {
	capabilities_request
	authenticated
}

# capabilities_request holds for the server's CapabilityStatement (GET
# /metadata), which belongs to no patient. Any other type, or any patient,
# makes the request a data request decided on the role table.
capabilities_request if {
	resource.kind == "fhir"
	resource.interaction == "capabilities"
	resource.type == "CapabilityStatement"
	resource.patients == []
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

# granted holds when a role grants the request (or it needs no role).
granted if granted_without_role

granted if {
	is_data_request
	some role in user.roles
	role != ""
	role_grants(role)
}

# role_grants(role) holds when role alone grants the request. (A role that
# is not a string cannot be a key of the roles table, so only the empty
# role needs excluding by callers.)
role_grants(role) if {
	role_permits(role)
	records_ok(role)
	care_ok(role)
	sensitivity_ok(role)
}

# role_permits(role) holds when the per-role table lets role take the
# request's action on its resource type (or run its operation). It is
# false rather than undefined otherwise, because OPA remembers a
# function's value for the rest of the evaluation only when it is
# defined: the deny path asks again. An else chain, so evaluation stops at
# the first body that holds.
default role_permits(_) := false

role_permits(role) if {
	cfg.roles[role][resource.action]["*"]
	cfg.clinical_types[resource.type]
} else if {
	cfg.roles[role][resource.action][resource.type]
	resource.type != "*"
	resource.action != "operation"
} else if {
	resource.action == "operation"
	cfg.roles[role].operation[resource.operation]
	resource.operation != ""
	operation_output_ok(role)
}

# operation_output_ok(role) holds in the request phase, and in the
# response phase when role may read the type of the resource the
# operation returned: an operation such as $everything returns resources
# of every type, and running it grants no more than reading them would.
# (Input without a phase is decided as a response, as patients_pending
# has it.)
operation_output_ok(_) if resource.phase == "request"

operation_output_ok(role) if {
	not resource.phase == "request"
	cfg.roles[role].read["*"]
	cfg.clinical_types[resource.type]
}

operation_output_ok(role) if {
	not resource.phase == "request"
	cfg.roles[role].read[resource.type]
	resource.type != "*"
}

# missing_grants says why each of the caller's roles did not grant.
missing_grants contains reason if {
	is_data_request
	some role in user.roles
	is_string(role)
	role != ""
	reason := missing_grant(role)
}

# missing_grant(role) says why role did not grant the request, naming the
# first check it failed. The first body gives the second's text for the
# common actions without building what. A write to a relationship type
# without the relationship, which no grant opens, is named first among
# the checks a grant could lift; a very restricted record before the care
# relationship, the relationship before other sensitivity: with neither,
# the relationship is what the user most likely lacks.
missing_grant(role) := sprintf("role %s may not %s %s", [role, resource.action, resource.type]) if {
	not role_permits(role)
	resource.action in {"read", "vread", "search", "create", "update", "patch", "delete", "export"}
	is_string(resource.type)
	resource.type != ""
} else := sprintf("role %s may not %s", [role, what]) if {
	not role_permits(role)
} else := sprintf("role %s may only access the caller's own records", [role]) if {
	self_only(role)
	not self_ok
} else := "psychotherapy notes are excluded from a patient's right of access" if {
	self_only(role)
	not records_ok(role)
} else := "staff roles may not open the caller's own or a linked patient's record" if {
	not records_ok(role)
} else := sprintf("%s needs a care relationship with the patient; break-the-glass does not open it", [what]) if {
	not care_ok(role)
	relationship_write
} else := "very restricted record" if {
	very_restricted
	not sensitivity_ok(role)
} else := "not on the patient's care team" if {
	not care_ok(role)
} else := sensitivity_reason
