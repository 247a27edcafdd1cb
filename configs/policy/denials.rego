# Denials: each one overrides every grant.
package chartguard

import data.chartguard_data as cfg
import input.resource

known_actions := {"read", "vread", "search", "history", "create", "update", "patch", "delete", "operation"}

denials contains "not authenticated" if not authenticated

denials contains "no role" if {
	is_data_request
	count(user_roles) == 0
}

denials contains "unsupported resource kind" if {
	not resource.kind in {"fhir", "route", "static"}
}

denials contains "unsupported action" if {
	is_data_request
	not resource.action in known_actions
}

# Searches and histories over clinical data (or over every type) must name
# the patients they touch. The history of one resource (history-instance)
# is not a search: like a read by id, it is decided again on each version
# in the response phase. data.chartguard_data.search_requires_patient
# switches this off; only an explicit false does, so missing data keeps it.
denials contains "search must name a patient" if {
	is_data_request
	resource.action in {"search", "history"}
	not resource.interaction == "history-instance"
	bulk_scope
	not names_patients
	not cfg.search_requires_patient == false
}

# Operations over clinical data (or the whole server) must name the
# patients they touch, whatever the flag says.
denials contains "operation must name a patient" if {
	is_data_request
	resource.action == "operation"
	bulk_scope
	not names_patients
}

# bulk_scope holds when the request reaches clinical data or every type.
bulk_scope if resource.type in cfg.clinical_types

bulk_scope if not resource.type

bulk_scope if resource.type == ""
