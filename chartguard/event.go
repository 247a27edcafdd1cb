package chartguard

// EventVersion is the audit schema version written in [Event.V].
const EventVersion = 1

// Audit actions beyond the FHIR interactions.
const (
	ActionHTTP        = "http"
	ActionLogin       = "login"
	ActionLogout      = "logout"
	ActionAdmin       = "admin"
	ActionAuditAccess = "audit_access"
)

// Audit outcomes.
const (
	OutcomeAllowed = "allowed"
	OutcomeDenied  = "denied"
	OutcomeBlocked = "blocked"
	OutcomeError   = "error"
)

// Event is one audit record (schema v1, one JSON object per line). It holds
// identifiers only: never tokens, session ids (only their hash), clinical
// content or results.
type Event struct {
	V          int              `json:"v"`
	ID         string           `json:"id"`
	Time       string           `json:"time"`
	Seq        uint64           `json:"seq"`
	Node       string           `json:"node"`
	Action     string           `json:"action"`
	Outcome    string           `json:"outcome"`
	User       *EventUser       `json:"user,omitempty"`
	Client     EventClient      `json:"client"`
	Request    EventRequest     `json:"request"`
	Resource   *EventResource   `json:"resource,omitempty"`
	Decision   *EventDecision   `json:"decision,omitempty"`
	BreakGlass *EventBreakGlass `json:"break_glass,omitempty"`
	Count      int              `json:"count"`
}

// EventUser identifies the caller.
type EventUser struct {
	Issuer  string   `json:"iss"`
	Subject string   `json:"sub"`
	Name    string   `json:"name,omitempty"`
	Roles   []string `json:"roles"`
	Session string   `json:"session,omitempty"`
	MFA     string   `json:"mfa,omitempty"`
}

// EventClient identifies the calling software and address.
type EventClient struct {
	IP        string `json:"ip"`
	UserAgent string `json:"user_agent,omitempty"`
	ID        string `json:"id,omitempty"`
}

// EventRequest describes the HTTP exchange.
type EventRequest struct {
	ID         string  `json:"id"`
	Method     string  `json:"method"`
	Path       string  `json:"path"`
	Status     int     `json:"status"`
	Bytes      int64   `json:"bytes"`
	DurationMS float64 `json:"duration_ms"`
}

// EventResource is what was touched.
type EventResource struct {
	Kind              string   `json:"kind"`
	Interaction       string   `json:"interaction,omitempty"`
	Type              string   `json:"type,omitempty"`
	ID                string   `json:"id,omitempty"`
	Patients          []string `json:"patients"`
	PatientsTruncated bool     `json:"patients_truncated"`
	PatientStatus     string   `json:"patient_status"`
	Labels            []string `json:"labels,omitempty"`
}

// EventDecision records the policy decision.
type EventDecision struct {
	ID           string   `json:"id"`
	Revision     string   `json:"revision"`
	Reasons      []string `json:"reasons"`
	PurposeOfUse string   `json:"purpose_of_use,omitempty"`
	BreakGlass   bool     `json:"break_glass"`
	Obligations  []string `json:"obligations,omitempty"`
	Tags         []string `json:"tags,omitempty"`
}

// EventBreakGlass records a break-the-glass lifecycle step.
type EventBreakGlass struct {
	Event         string `json:"event"`
	EndReason     string `json:"end_reason,omitempty"`
	Grant         string `json:"grant,omitempty"`
	Reason        string `json:"reason,omitempty"`
	Justification string `json:"justification,omitempty"`
	ExpiresAt     string `json:"expires_at,omitempty"`
}

// OutcomeForStatus maps a final HTTP status to an audit outcome
// (DESIGN.md): 400/401/403/404/413/429 → denied, 5xx → error, else allowed.
func OutcomeForStatus(status int) string {
	switch {
	case status >= 500:
		return OutcomeError
	case status >= 400:
		return OutcomeDenied
	default:
		return OutcomeAllowed
	}
}
