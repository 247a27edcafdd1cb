package audit

import (
	"fmt"
	"strings"
	"time"

	"github.com/chartguard/chartguard/chartguard"
)

// FHIR code systems used by the fhir report format (IHE BALP shapes).
const (
	sysAuditEventType = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	sysRESTful        = "http://hl7.org/fhir/restful-interaction"
	sysDICOM          = "http://dicom.nema.org/resources/ontology/DCM"
	sysParticipation  = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	sysActReason      = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	sysEntityType     = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	sysObjectRole     = "http://terminology.hl7.org/CodeSystem/object-role"
	sysCheckpoint     = "urn:chartguard:audit:checkpoint"
	balpProfile       = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
)

type fhirCoding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type fhirConcept struct {
	Coding []fhirCoding `json:"coding,omitempty"`
	Text   string       `json:"text,omitempty"`
}

type fhirIdentifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

type fhirReference struct {
	Reference  string          `json:"reference,omitempty"`
	Type       string          `json:"type,omitempty"`
	Identifier *fhirIdentifier `json:"identifier,omitempty"`
	Display    string          `json:"display,omitempty"`
}

type fhirAgent struct {
	Type         *fhirConcept   `json:"type,omitempty"`
	Role         []fhirConcept  `json:"role,omitempty"`
	Who          *fhirReference `json:"who,omitempty"`
	Requestor    bool           `json:"requestor"`
	PurposeOfUse []fhirConcept  `json:"purposeOfUse,omitempty"`
}

type fhirEntity struct {
	What *fhirReference `json:"what,omitempty"`
	Type *fhirCoding    `json:"type,omitempty"`
	Role *fhirCoding    `json:"role,omitempty"`
}

type fhirAuditEvent struct {
	ResourceType string         `json:"resourceType"`
	Meta         map[string]any `json:"meta,omitempty"`
	Type         fhirCoding     `json:"type"`
	Subtype      []fhirCoding   `json:"subtype,omitempty"`
	Action       string         `json:"action,omitempty"`
	Recorded     string         `json:"recorded"`
	Outcome      string         `json:"outcome"`
	OutcomeDesc  string         `json:"outcomeDesc,omitempty"`
	PurposeOf    []fhirConcept  `json:"purposeOfEvent,omitempty"`
	Agent        []fhirAgent    `json:"agent"`
	Source       map[string]any `json:"source"`
	Entity       []fhirEntity   `json:"entity"`
}

// fhirReport is a FHIR R4 Bundle (type collection) of AuditEvents shaped
// after IHE BALP: type rest, subtype the RESTful interaction, the user as
// the requesting agent, the queried patient as the only patient entity.
// The checkpoints verified against are Bundle.meta.tag codings.
type fhirReport struct{ jsonStream }

func (f *fhirReport) header(req *ReportRequest, srcs []SourceState) error {
	tags := []fhirCoding{}
	for _, s := range srcs {
		c := fhirCoding{System: sysCheckpoint, Code: fmt.Sprintf("%s %d %s", s.Origin, s.Size, s.Root), Display: "verified"}
		if !s.Verified {
			c = fhirCoding{System: sysCheckpoint, Code: "unverified", Display: "NOT VERIFIED: no checkpoint key given"}
		}
		tags = append(tags, c)
	}
	head := map[string]any{"resourceType": "Bundle", "type": "collection",
		"timestamp": req.Generated.UTC().Format(time.RFC3339), "meta": map[string]any{"tag": tags}}
	return f.open(head, "entry")
}

func (f *fhirReport) row(r *ReportRow) error {
	return f.item(map[string]any{"resource": auditEvent(r)})
}

func (f *fhirReport) footer(_ *ReportRequest, _ []SourceState, n int) error {
	return f.close("total", n)
}

// auditEvent renders one row (already reduced to the patient).
func auditEvent(r *ReportRow) fhirAuditEvent {
	ev := r.ev
	interaction := r.Action
	if ev.Resource != nil && ev.Resource.Interaction != "" {
		interaction = ev.Resource.Interaction
	}
	ae := fhirAuditEvent{ResourceType: "AuditEvent",
		Type:     fhirCoding{System: sysAuditEventType, Code: "rest", Display: "Restful Operation"},
		Subtype:  []fhirCoding{{System: sysRESTful, Code: interaction}},
		Action:   fhirAction(interaction),
		Recorded: r.Time.UTC().Format(time.RFC3339Nano),
		Outcome:  fhirOutcome(r.Outcome),
		Source:   map[string]any{"observer": fhirReference{Display: r.Node}},
	}
	profile := "PatientQuery"
	switch ae.Action {
	case "R":
		profile = "PatientRead"
	case "C":
		profile = "PatientCreate"
	case "U":
		profile = "PatientUpdate"
	case "D":
		profile = "PatientDelete"
	}
	if ev.BreakGlass != nil { // DICOM Emergency Override Started / Stopped
		code, display := "110127", "Emergency Override Started"
		if ev.BreakGlass.Event == "end" {
			code, display = "110138", "Emergency Override Stopped"
		}
		ae.Type, ae.Subtype, ae.Action, profile = fhirCoding{System: sysDICOM, Code: code, Display: display}, nil, "E", ""
	}
	if profile != "" {
		ae.Meta = map[string]any{"profile": []string{balpProfile + profile}}
	}
	if r.Outcome != "allowed" {
		ae.OutcomeDesc = r.Outcome
	}
	agent := fhirAgent{Type: &fhirConcept{Coding: []fhirCoding{{System: sysParticipation, Code: "IRCP", Display: "information recipient"}}},
		Requestor: true}
	if u := ev.User; u != nil {
		agent.Who = &fhirReference{Identifier: &fhirIdentifier{System: u.Issuer, Value: u.Subject}, Display: r.Person}
		for _, role := range u.Roles {
			agent.Role = append(agent.Role, fhirConcept{Text: role})
		}
	}
	if pou := purposeCodes(ev.Decision, ev.BreakGlass); len(pou) > 0 {
		agent.PurposeOfUse, ae.PurposeOf = pou, pou
	}
	ae.Agent = []fhirAgent{agent}
	patient := ev.Resource.Patients[0]
	ae.Entity = []fhirEntity{{What: &fhirReference{Reference: "Patient/" + patient},
		Type: &fhirCoding{System: sysEntityType, Code: "1", Display: "Person"},
		Role: &fhirCoding{System: sysObjectRole, Code: "1", Display: "Patient"}}}
	if t := ev.Resource.Type; t != "" && t != "Patient" {
		what := &fhirReference{Type: t}
		if ev.Resource.ID != "" {
			what.Reference = t + "/" + ev.Resource.ID
		}
		ae.Entity = append(ae.Entity, fhirEntity{What: what,
			Type: &fhirCoding{System: sysEntityType, Code: "2", Display: "System Object"},
			Role: &fhirCoding{System: sysObjectRole, Code: "4", Display: "Domain Resource"}})
	}
	return ae
}

func purposeCodes(d *chartguard.EventDecision, bg *chartguard.EventBreakGlass) []fhirConcept {
	var out []fhirConcept
	if d != nil && d.PurposeOfUse != "" {
		out = append(out, fhirConcept{Coding: []fhirCoding{{System: sysActReason, Code: d.PurposeOfUse}}})
	}
	if bg != nil && bg.Reason != "" && (d == nil || bg.Reason != d.PurposeOfUse) {
		out = append(out, fhirConcept{Coding: []fhirCoding{{System: sysActReason, Code: bg.Reason}}, Text: bg.Justification})
	}
	return out
}

// fhirAction maps a RESTful interaction to AuditEvent.action.
func fhirAction(interaction string) string {
	switch {
	case interaction == "read" || interaction == "vread":
		return "R"
	case interaction == "create":
		return "C"
	case interaction == "update" || interaction == "patch":
		return "U"
	case interaction == "delete":
		return "D"
	case strings.HasPrefix(interaction, "search"), strings.HasPrefix(interaction, "history"):
		return "E"
	}
	return "E"
}

// fhirOutcome maps an event outcome to AuditEvent.outcome: 0 success,
// 4 minor failure (denied or blocked), 8 serious failure (error).
func fhirOutcome(o string) string {
	switch o {
	case "allowed":
		return "0"
	case "error":
		return "8"
	}
	return "4"
}
