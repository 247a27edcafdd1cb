# Sensitivity labels: the meta.security codes of a resource
# (input.resource.labels, e.g. ["PSY", "R"]) restrict who may see it.
#
#   - restricted (data.chartguard_data.restricted_labels, "R"): only a user
#     on the care team of every patient of the resource, through a
#     care-team role, or the patient themself (a self-only role, own
#     record). Other roles are denied ("restricted record").
#   - very restricted (very_restricted_labels, "V"): only the patient
#     themself ("very restricted record").
#
# Labels arrive with each resource in the response phase, and in the
# request phase when the request carries them (a write's body). A label
# list that is missing or null means no labels: ChartGuard always sends
# the list. Codes are compared without their system (the response scan
# reports codes only), so an "R" of another code system also restricts:
# the error, if any, is on the side of restricting.
package chartguard

import data.chartguard_data as cfg
import input.resource

# labels_ok(role) holds when role may see a resource of these labels.
#
# Security: a restricted record opens to a care-team role only on proven
# care relationships (on_care_team), never on patients that are still
# pending, and a very restricted one never opens to a clinician. Threat:
# staff looking up a VIP's, colleague's or sensitive record. Break-the-
# glass, which will let a clinician open such a record with a recorded
# reason, comes in a later issue.
#
# An else chain, so that evaluation stops at the first condition that
# holds; most resources have no label at all, which the first checks with
# one lookup.
default labels_ok(_) := false

labels_ok(role) if {
	not resource.labels[0]
} else if {
	not very_restricted
	not restricted
} else if {
	not very_restricted
	cfg.care_team_roles[role]
	on_care_team
} else if {
	self_only(role)
	own_records
}

# very_restricted holds when the resource carries a very restricted label.
very_restricted if {
	some label in resource.labels
	cfg.very_restricted_labels[label]
}

# restricted holds when the resource carries a restricted label.
restricted if {
	some label in resource.labels
	cfg.restricted_labels[label]
}
