package proxy

import (
	"net/http"
	"strings"

	"github.com/chartguard/chartguard/chartguard"
)

// FHIR interactions as the policy sees them (input.resource.interaction).
const (
	iRead              = "read"
	iVread             = "vread"
	iUpdate            = "update"
	iPatch             = "patch"
	iDelete            = "delete"
	iHistoryInstance   = "history-instance"
	iHistoryType       = "history-type"
	iHistorySystem     = "history-system"
	iCreate            = "create"
	iSearchType        = "search-type"
	iSearchSystem      = "search-system"
	iSearchCompartment = "search-compartment"
	iCapabilities      = "capabilities"
	iOperation         = "operation"
	iBatch             = "batch"
	iSMARTConfig       = "smart-configuration"
)

// auditAction maps an interaction to the audit event's action.
func auditAction(interaction, operation string) string {
	switch interaction {
	case iRead, iCapabilities, iSMARTConfig:
		return "read"
	case iVread, iUpdate, iPatch, iDelete, iCreate:
		return interaction
	case iHistoryInstance, iHistoryType, iHistorySystem:
		return "history"
	case iSearchType, iSearchSystem, iSearchCompartment:
		return "search"
	case iOperation, iBatch:
		if isExportOperation(operation) {
			return "export"
		}
		return "operation"
	}
	return chartguard.ActionHTTP
}

// isExportOperation: $export (system, type, Group and Patient level) and
// the bulk-data status polling operations servers name after it
// ($export-poll-status). Their downloads are ordinary reads (Binary).
func isExportOperation(name string) bool {
	return name == "export" || strings.HasPrefix(name, "export-")
}

// patientModifier is the one search modifier that keeps a patient parameter
// bound to the patients it names.
const patientModifier = "Patient"

// widening parameters can select resources of patients the request does not
// name (reverse chains, free-text and filter expressions, predefined queries,
// lists, includes): with any of them the request's patients are unknown.
var widening = map[string]bool{
	"_has": true, "_filter": true, "_query": true, "_list": true, "_text": true,
	"_content": true, "_include": true, "_revinclude": true,
}

// classifier turns a normalised request into a [chartguard.Resource].
type classifier struct {
	fhirBase string   // "/fhir"; "" when the upstream is not FHIR
	bases    []string // absolute FHIR bases whose Patient URLs name local patients
	routes   []route
}

// classifyFHIR classifies a request under the FHIR base. rest is the path
// below the base, already canonical. ok is false for a path that is not a FHIR
// interaction ChartGuard understands.
func (c *classifier) classifyFHIR(method, rest string, params []param) (res chartguard.Resource, ok bool) {
	res = chartguard.Resource{Kind: chartguard.KindFHIR, Phase: chartguard.PhaseRequest,
		Patients: []string{}, Labels: []string{}}
	segs := splitPath(rest)
	get := method == http.MethodGet || method == http.MethodHead
	switch n := len(segs); {
	case n == 0:
		switch {
		case get:
			res.Interaction = iSearchSystem
		case method == http.MethodPost:
			res.Interaction = iBatch
		}
	case n == 1 && segs[0] == "metadata" && get:
		res.Interaction, res.Type = iCapabilities, "CapabilityStatement"
	case n == 2 && segs[0] == ".well-known" && segs[1] == "smart-configuration" && get:
		res.Interaction = iSMARTConfig
	case n == 1 && segs[0] == "_history" && get:
		res.Interaction = iHistorySystem
	case n == 1 && segs[0] == "_search" && method == http.MethodPost:
		res.Interaction = iSearchSystem
	case n == 1 && isOperation(segs[0]):
		res.Interaction, res.Operation = iOperation, segs[0][1:]
	case isType(segs[0]):
		res.Type = segs[0]
		c.classifyTyped(method, segs[1:], &res)
	}
	if res.Interaction == "" {
		return res, false
	}
	res.Action = auditAction(res.Interaction, res.Operation)
	c.setPatients(&res, params)
	return res, true
}

// classifyTyped classifies [type]/… paths; segs follow the type.
func (c *classifier) classifyTyped(method string, segs []string, res *chartguard.Resource) {
	get := method == http.MethodGet || method == http.MethodHead
	switch n := len(segs); {
	case n == 0:
		switch method {
		case http.MethodGet, http.MethodHead:
			res.Interaction = iSearchType
		case http.MethodPost:
			res.Interaction = iCreate
		case http.MethodPut: // conditional update
			res.Interaction = iUpdate
		case http.MethodPatch:
			res.Interaction = iPatch
		case http.MethodDelete:
			res.Interaction = iDelete
		}
	case n == 1 && segs[0] == "_search" && method == http.MethodPost:
		res.Interaction = iSearchType
	case n == 1 && segs[0] == "_history" && get:
		res.Interaction = iHistoryType
	case n == 1 && isOperation(segs[0]):
		res.Interaction, res.Operation = iOperation, segs[0][1:]
	case !isID(segs[0]):
		return
	case n == 1:
		res.ID = segs[0]
		switch method {
		case http.MethodGet, http.MethodHead:
			res.Interaction = iRead
		case http.MethodPut:
			res.Interaction = iUpdate
		case http.MethodPatch:
			res.Interaction = iPatch
		case http.MethodDelete:
			res.Interaction = iDelete
		}
	case n == 2 && segs[1] == "_history" && get:
		res.ID, res.Interaction = segs[0], iHistoryInstance
	case n == 3 && segs[1] == "_history" && isID(segs[2]) && get:
		res.ID, res.Interaction = segs[0], iVread
	case n == 2 && isOperation(segs[1]):
		res.ID, res.Interaction, res.Operation = segs[0], iOperation, segs[1][1:]
	case n == 2 && res.Type == "Patient" && get && (isType(segs[1]) || segs[1] == "*"):
		// Compartment search: the type searched replaces Patient.
		res.Patients = append(res.Patients, segs[0])
		res.Type, res.Interaction = segs[1], iSearchCompartment
	}
}

// setPatients decides which patients the request names, and whether that
// set is proven (known), unprovable (unknown) or empty by nature (none).
func (c *classifier) setPatients(res *chartguard.Resource, params []param) {
	switch {
	case res.Interaction == iSearchCompartment:
		// The compartment bounds the result whatever the parameters say,
		// but includes can still pull in other patients' resources.
		res.PatientStatus = chartguard.PatientsKnown
		if hasWidening(params) {
			res.PatientStatus = chartguard.PatientsUnknown
		}
		return
	case res.Type == "Patient" && res.ID != "":
		res.Patients = append(res.Patients, res.ID)
		res.PatientStatus = chartguard.PatientsKnown
		return
	case res.Interaction == iCapabilities || res.Interaction == iSMARTConfig:
		res.PatientStatus = chartguard.PatientsNone
		return
	case res.Type != "" && nonPatientTypes[res.Type]:
		res.PatientStatus = chartguard.PatientsNone
		return
	}
	res.PatientStatus = chartguard.PatientsUnknown
	search := res.Interaction == iSearchType || res.Interaction == iSearchSystem
	if !search || res.Type == "" || hasWidening(params) {
		return
	}
	patients, known := c.searchPatients(res.Type, params)
	if known {
		res.Patients = append(res.Patients, patients...)
		res.PatientStatus = chartguard.PatientsKnown
	}
}

// searchPatients reads the patients a type search is restricted to. Comma
// lists are OR, so every value must name a patient for the parameter to
// restrict; repeats are AND, so one restricting parameter is enough and the
// union of all named patients is what policy must allow. A modifier other
// than :Patient or a chain on a patient parameter makes the set unknown.
func (c *classifier) searchPatients(typ string, params []param) (patients []string, known bool) {
	var unknown bool
	for _, p := range params {
		name, modifier, hasModifier := strings.Cut(p.Name, ":")
		base, _, chained := strings.Cut(name, ".")
		if !isPatientParam(typ, base) {
			continue
		}
		if chained || (hasModifier && modifier != patientModifier) {
			unknown = true
			continue
		}
		ids, ok := c.patientValues(p.Value)
		if !ok {
			continue // e.g. Group/g1 or another server's URL: narrows nothing we can prove
		}
		known = true
		patients = appendUnique(patients, ids...)
	}
	if unknown {
		return nil, false
	}
	return patients, known
}

// patientValues parses a comma list of patient references.
func (c *classifier) patientValues(v string) ([]string, bool) {
	var ids []string
	for item := range strings.SplitSeq(v, ",") {
		id, ok := c.patientRef(item)
		if !ok {
			return nil, false
		}
		ids = append(ids, id)
	}
	return ids, len(ids) > 0
}

// patientRef accepts a plain id, "Patient/id", or an absolute URL under one of
// the FHIR bases ChartGuard fronts.
func (c *classifier) patientRef(v string) (string, bool) {
	for _, b := range c.bases {
		if rest, ok := strings.CutPrefix(v, b); ok && strings.HasPrefix(rest, "/Patient/") {
			v = rest[1:]
			break
		}
	}
	if id, ok := strings.CutPrefix(v, "Patient/"); ok {
		v = id
	}
	if !isID(v) {
		return "", false
	}
	return v, true
}

func hasWidening(params []param) bool {
	for _, p := range params {
		name, _, _ := strings.Cut(p.Name, ":")
		if widening[name] {
			return true
		}
	}
	return false
}

func appendUnique(list []string, items ...string) []string {
	for _, it := range items {
		dup := false
		for _, have := range list {
			if have == it {
				dup = true
				break
			}
		}
		if !dup {
			list = append(list, it)
		}
	}
	return list
}

// splitPath splits a canonical path into its segments.
func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// isType matches a FHIR resource type name.
func isType(s string) bool {
	if len(s) < 2 || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// isID matches a FHIR logical id: [A-Za-z0-9\-\.]{1,64}.
func isID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isAlnum(c) || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// isOperation matches "$name".
func isOperation(s string) bool {
	if len(s) < 2 || s[0] != '$' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(isAlnum(c) || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
