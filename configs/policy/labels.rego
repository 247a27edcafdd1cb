# Sensitivity: records that need break-the-glass even with a care
# relationship.
#
# A resource is sensitive when
#
#   - it carries a sensitive meta.security code (input.resource.labels):
#     confidentiality R (restricted_labels) or V (very_restricted_labels),
#     or a sensitivity code in sensitive_labels (ETH, HIV, PSY, PSYTHPN,
#     SDV as shipped); or
#   - one of its patients is in vip_patients or employee_patients, unless
#     its type is in sensitivity_exempt_types (AuditEvent as shipped: the
#     privacy office reviews who opened a VIP's chart without opening it).
#
# A sensitive resource is open only to the patient themself (a self-only
# role on its own records) and, for a role in break_glass_roles, under an
# active break-the-glass grant for every one of its patients
# (breakglass.rego). Everyone else is denied, with a break-the-glass offer
# when a role of theirs could ask for a grant.
#
# Labels arrive with each resource in the response phase, and in the
# request phase when the request carries them (a write's body). A label
# list that is missing or null means no labels (ChartGuard always sends
# the list); any other non-array denies (denials.rego). Codes are compared
# without their system (the response scan reports codes only), so an "R"
# of another code system also restricts: the error, if any, is on the side
# of restricting.
package chartguard

import data.chartguard_data as cfg
import input.resource

# sensitivity_ok(role) holds when role may see a resource this sensitive.
#
# Security: labels and VIP/employee lists bind every role, clinical or
# not, with or without a care relationship. Threat: staff looking up a
# VIP's, colleague's or sensitive record. Accepted risk: a grant, once
# given, opens every resource of the patient until it expires; each use is
# tagged "break-glass" in the audit log for the privacy office's review.
#
# An else chain, so that evaluation stops at the first condition that
# holds; most resources are not sensitive at all.
default sensitivity_ok(_) := false

sensitivity_ok(role) if {
	not sensitive
} else if {
	self_only(role)
	own_records
} else if {
	names_patients
	every p in resource.patients {
		break_glass_open(role, p)
	}
}

# sensitive holds when the resource needs break-the-glass.
sensitive if {
	sensitive_label
} else if {
	sensitive_patient
}

# sensitive_label holds when the resource carries a sensitive label.
sensitive_label if {
	some label in resource.labels
	is_sensitive_label(label)
}

is_sensitive_label(label) if {
	cfg.restricted_labels[label]
} else if {
	cfg.very_restricted_labels[label]
} else if {
	cfg.sensitive_labels[label]
}

# sensitive_patient holds when a patient of the resource is a VIP or an
# employee, and the type is not exempt.
sensitive_patient if vip

sensitive_patient if employee

vip if {
	vip_patient
	not cfg.sensitivity_exempt_types[resource.type]
}

employee if {
	employee_patient
	not cfg.sensitivity_exempt_types[resource.type]
}

# vip_patient and employee_patient hold when a patient of the resource is
# on the list, whatever the type (for tags, obligations.rego).
vip_patient if {
	some p in resource.patients
	cfg.vip_patients[p]
}

employee_patient if {
	some p in resource.patients
	cfg.employee_patients[p]
}

# malformed_labels holds when labels is present but not a list.
malformed_labels if {
	labels := resource.labels
	labels != null
	not is_array(labels)
}

very_restricted if {
	some label in resource.labels
	cfg.very_restricted_labels[label]
}

# sensitivity_reason names the strongest reason a resource is sensitive
# but a very restricted label (which missing_grant names first).
sensitivity_reason := "restricted record" if {
	some label in resource.labels
	cfg.restricted_labels[label]
} else := sprintf("sensitive record (%s)", [concat(", ", sort(codes))]) if {
	codes := {label | some label in resource.labels; cfg.sensitive_labels[label]}
	count(codes) > 0
} else := "VIP patient's record" if {
	vip
} else := "employee-patient's record" if {
	employee
}
