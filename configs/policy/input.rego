# Normalised views of the input.
#
# Every value here is defined whatever the input holds: a missing, null or
# wrongly typed field reads as "" or an empty set. Rules elsewhere use these
# views, never input directly, so that a missing field can only ever remove
# a grant, not add one.
package chartguard

import data.chartguard_data as cfg

# authenticated holds when the caller has a verified subject.
authenticated if {
	is_string(input.user.sub)
	input.user.sub != ""
}

# user_roles is the set of the caller's roles (strings only).
user_roles contains role if {
	some role in input.user.roles
	is_string(role)
	role != ""
}

kind := resource_field("kind")

phase := resource_field("phase")

resource_type := resource_field("type")

action := resource_field("action")

interaction := resource_field("interaction")

operation := resource_field("operation")

patient_status := resource_field("patient_status")

# resource_field(name) is input.resource[name] if that is a string, else "".
resource_field(name) := x if {
	x := input.resource[name]
	is_string(x)
} else := ""

# patients is the set of patient ids the resource belongs to.
patients contains p if {
	some p in input.resource.patients
	is_string(p)
}

# linked_patients is the set of patient ids the user is (from
# user.patient_links, values "Patient/<id>").
linked_patients contains id if {
	some link in input.user.patient_links
	is_string(link)
	startswith(link, "Patient/")
	id := substring(link, count("Patient/"), -1)
	id != ""
	not contains(id, "/")
}

# is_clinical_type holds for the clinical types named in data.
is_clinical_type if resource_type in cfg.clinical_types

# type_label names the resource type in reasons.
type_label := resource_type if resource_type != ""
else := "all resource types"
