package chartguard

import "time"

// Identity is a verified caller. A user is Issuer+Subject, never an email or
// a name: those are for display only.
type Identity struct {
	Issuer       string   `json:"iss"`
	Subject      string   `json:"sub"`
	Name         string   `json:"name,omitempty"`
	Email        string   `json:"email,omitempty"`
	Roles        []string `json:"roles"`
	Groups       []string `json:"groups,omitempty"`
	Department   string   `json:"department,omitempty"`
	FHIRUser     string   `json:"fhir_user,omitempty"`
	PatientLinks []string `json:"patient_links,omitempty"`
}

// Credential kinds for [Token.Kind].
const (
	TokenSession = "session"
	TokenBearer  = "bearer"
)

// Token describes how the caller authenticated (policy input "token").
type Token struct {
	Kind          string   `json:"kind"`
	ClientID      string   `json:"client_id,omitempty"`
	Scopes        []string `json:"scopes,omitempty"`
	LaunchPatient string   `json:"launch_patient,omitempty"`
	PurposeOfUse  string   `json:"purpose_of_use,omitempty"`
}

// Principal is everything authentication established about a request.
type Principal struct {
	Identity Identity
	Token    Token
	Session  SessionInfo
	// TokenHash is the hex SHA-256 of the presented credential, for
	// correlation in audit; the credential itself is never kept.
	TokenHash string
}

// SessionInfo is the policy input "session".
type SessionInfo struct {
	MFA        bool       `json:"mfa"`
	MFAMethod  string     `json:"mfa_method"`
	MFAAgeS    int64      `json:"mfa_age_s"`
	AuthAgeS   int64      `json:"auth_age_s"`
	BreakGlass []BTGGrant `json:"break_glass"`
}

// BTGGrant is a time-boxed break-the-glass grant for one patient.
type BTGGrant struct {
	Grant     string    `json:"grant"`
	Patient   string    `json:"patient"`
	Reason    string    `json:"reason"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Resource kinds.
const (
	KindFHIR   = "fhir"
	KindRoute  = "route"
	KindStatic = "static"
	KindProxy  = "proxy"
)

// Patient status: whether the request proves which patients it touches.
const (
	PatientsKnown   = "known"
	PatientsUnknown = "unknown"
	PatientsNone    = "none"
)

// Policy phases.
const (
	PhaseRequest  = "request"
	PhaseResponse = "response"
)

// Resource is the classification of a request (or, in the response phase,
// of one resource the response exposes).
type Resource struct {
	Kind          string   `json:"kind"`
	Phase         string   `json:"phase,omitempty"`
	Type          string   `json:"type"`
	ID            string   `json:"id"`
	Patients      []string `json:"patients"`
	PatientStatus string   `json:"patient_status"`
	// Action is the audit action (read, search, create, …).
	Action string `json:"action"`
	// Interaction is the FHIR interaction (read, search-type, …) or, for
	// routes, the route's action.
	Interaction string `json:"interaction"`
	// Operation is the FHIR operation name without "$", when Interaction is
	// "operation".
	Operation string   `json:"operation,omitempty"`
	Labels    []string `json:"labels"`
}

// Request is the policy input "request": the normalised request as both
// policy and upstream see it.
type Request struct {
	Method string              `json:"method"`
	Path   string              `json:"path"`
	Query  map[string][]string `json:"query"`
	IP     string              `json:"ip"`
	Time   time.Time           `json:"time"`
}

// Relationship is what the EMR says about a user and one patient.
type Relationship struct {
	CareTeam         bool   `json:"care_team"`
	PCP              bool   `json:"pcp"`
	EncounterDaysAgo *int   `json:"encounter_days_ago,omitempty"`
	Department       string `json:"department,omitempty"`
}

// Usage carries rate context for minimum-necessary rules.
type Usage struct {
	DistinctPatientsWindow int `json:"distinct_patients_window"`
}

// Input is the policy input document (DESIGN.md, "Policy contract").
type Input struct {
	User         Identity                `json:"user"`
	Token        Token                   `json:"token"`
	Session      SessionInfo             `json:"session"`
	Request      Request                 `json:"request"`
	Resource     Resource                `json:"resource"`
	Relationship map[string]Relationship `json:"relationship"`
	Usage        Usage                   `json:"usage"`
}

// Decision is the policy result. The zero value denies.
type Decision struct {
	Allow             bool        `json:"allow"`
	Reasons           []string    `json:"reasons"`
	BreakGlass        BreakGlass  `json:"break_glass"`
	RequireMFAWithinS int64       `json:"require_mfa_within_s"`
	Obligations       Obligations `json:"obligations"`

	// ID and Revision identify the evaluation and the policy that made it.
	// They are set by the evaluator, not by Rego.
	ID       string `json:"-"`
	Revision string `json:"-"`
}

// BreakGlass is the break-the-glass offer in a Decision.
type BreakGlass struct {
	Allowed bool     `json:"allowed"`
	Reasons []string `json:"reasons"`
}

// Obligations are conditions attached to an allow.
type Obligations struct {
	Redact      []string `json:"redact"`
	BlockExport bool     `json:"block_export"`
	MaxCount    int      `json:"max_count"`
	Tags        []string `json:"tags"`
}
