# Denials: each one overrides every grant.
#
# denials is the set of reasons why the request must be denied whatever
# grants it. It is computed only to explain a deny: allow (chartguard.rego)
# restates its conditions in positive form.
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

denials contains "unsupported action" if {
	is_data_request
	not resource.action in {"read", "vread", "search", "history", "create", "update", "patch", "delete", "operation"}
}

denials contains "search must name a patient" if {
	resource.action in {"search", "history"}
	patients_unnamed
}

denials contains "operation must name a patient" if {
	resource.action == "operation"
	patients_unnamed
}

# patients_unnamed holds for a search, history or operation that must name
# the patients it touches and does not.
#
# Searches and histories over clinical data (or over every type) must name
# the patients they touch. The history of one resource (history-instance)
# is not a search: like a read by id, it is decided again on each version
# in the response phase. data.chartguard_data.search_requires_patient
# switches this off; only an explicit false does, so missing data keeps it.
patients_unnamed if {
	resource.action in {"search", "history"}
	not names_patients
	is_data_request
	not resource.interaction == "history-instance"
	bulk_scope
	not cfg.search_requires_patient == false
}

# Operations over clinical data (or the whole server) must name the
# patients they touch, whatever the flag says.
patients_unnamed if {
	resource.action == "operation"
	not names_patients
	is_data_request
	bulk_scope
}

# bulk_scope holds when the request reaches clinical data or every type.
bulk_scope if cfg.clinical_types[resource.type]

bulk_scope if not resource.type

bulk_scope if resource.type == ""
