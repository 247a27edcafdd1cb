package policy

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/chartguard/chartguard/chartguard"
)

// encoder converts a [chartguard.Input] to the AST value the policy sees as
// input.
//
// The result is exactly what ast.ValueFromReader would give for
// json.Marshal(in): the same keys (omitempty fields absent), null for nil
// slices and maps, RFC 3339 times, and invalid UTF-8 replaced as
// encoding/json replaces it. Building the terms directly is several times
// faster than the JSON round trip on this hot path (BenchmarkInputValue);
// TestInputValueMatchesJSON holds the two in step and fails when a field is
// added to the shared types without being added here.
//
// An encoder is immutable after newEncoder: it shares prebuilt terms for
// the object keys and the common enumerated values with every input it
// builds. Evaluation never modifies input terms (OPA shares interned terms
// the same way), so concurrent use is safe.
type encoder struct {
	terms map[string]*ast.Term
}

// sharedStrings returns the keys of the input document and values that
// recur in most inputs.
func sharedStrings() []string {
	return []string{
		// keys
		"user", "token", "session", "request", "resource", "relationship", "usage",
		"iss", "sub", "name", "email", "roles", "groups", "department", "fhir_user", "patient_links",
		"kind", "client_id", "scopes", "launch_patient", "purpose_of_use",
		"mfa", "mfa_method", "mfa_age_s", "auth_age_s", "break_glass",
		"grant", "patient", "reason", "expires_at",
		"method", "path", "query", "ip", "time",
		"phase", "type", "id", "patients", "patient_status", "action", "interaction", "operation", "labels",
		"care_team", "pcp", "encounter_days_ago", "distinct_patients_window",
		// values
		chartguard.TokenSession, chartguard.TokenBearer,
		chartguard.KindFHIR, chartguard.KindRoute, chartguard.KindStatic, chartguard.KindProxy,
		chartguard.PatientsKnown, chartguard.PatientsUnknown, chartguard.PatientsNone,
		chartguard.PhaseRequest, chartguard.PhaseResponse,
		"read", "vread", "search", "history", "create", "update", "patch", "delete",
		"search-type", "search-system", "search-compartment", "history-instance", "history-type",
		"history-system", "capabilities",
		"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
		"totp", "idp", "recovery", "none", "",
	}
}

func newEncoder() *encoder {
	shared := sharedStrings()
	terms := make(map[string]*ast.Term, len(shared))
	for _, s := range shared {
		terms[s] = ast.StringTerm(s)
	}
	return &encoder{terms: terms}
}

func (e *encoder) input(in *chartguard.Input) (ast.Value, error) {
	session, err := e.session(&in.Session)
	if err != nil {
		return nil, err
	}
	request, err := e.request(&in.Request)
	if err != nil {
		return nil, err
	}
	return ast.NewObject(
		e.item("user", e.identity(&in.User)),
		e.item("token", e.token(&in.Token)),
		e.item("session", session),
		e.item("request", request),
		e.item("resource", e.resource(&in.Resource)),
		e.item("relationship", e.relationships(in.Relationship)),
		e.item("usage", ast.ObjectTerm(
			e.item("distinct_patients_window", intTerm(int64(in.Usage.DistinctPatientsWindow))),
		)),
	), nil
}

func (e *encoder) identity(u *chartguard.Identity) *ast.Term {
	items := make([][2]*ast.Term, 0, 9)
	items = append(items,
		e.item("iss", e.str(u.Issuer)),
		e.item("sub", e.str(u.Subject)),
	)
	items = e.appendString(items, "name", u.Name)
	items = e.appendString(items, "email", u.Email)
	items = append(items, e.item("roles", e.strs(u.Roles)))
	items = e.appendStrings(items, "groups", u.Groups)
	items = e.appendString(items, "department", u.Department)
	items = e.appendString(items, "fhir_user", u.FHIRUser)
	items = e.appendStrings(items, "patient_links", u.PatientLinks)
	return ast.ObjectTerm(items...)
}

func (e *encoder) token(t *chartguard.Token) *ast.Term {
	items := make([][2]*ast.Term, 0, 5)
	items = append(items, e.item("kind", e.str(t.Kind)))
	items = e.appendString(items, "client_id", t.ClientID)
	items = e.appendStrings(items, "scopes", t.Scopes)
	items = e.appendString(items, "launch_patient", t.LaunchPatient)
	items = e.appendString(items, "purpose_of_use", t.PurposeOfUse)
	return ast.ObjectTerm(items...)
}

func (e *encoder) session(s *chartguard.SessionInfo) (*ast.Term, error) {
	grants := ast.NullTerm()
	if s.BreakGlass != nil {
		terms := make([]*ast.Term, len(s.BreakGlass))
		for i := range s.BreakGlass {
			g := &s.BreakGlass[i]
			expires, err := timeTerm(g.ExpiresAt)
			if err != nil {
				return nil, fmt.Errorf("session.break_glass[%d].expires_at: %w", i, err)
			}
			terms[i] = ast.ObjectTerm(
				e.item("grant", e.str(g.Grant)),
				e.item("patient", e.str(g.Patient)),
				e.item("reason", e.str(g.Reason)),
				e.item("expires_at", expires),
			)
		}
		grants = ast.ArrayTerm(terms...)
	}
	return ast.ObjectTerm(
		e.item("mfa", ast.InternedTerm(s.MFA)),
		e.item("mfa_method", e.str(s.MFAMethod)),
		e.item("mfa_age_s", intTerm(s.MFAAgeS)),
		e.item("auth_age_s", intTerm(s.AuthAgeS)),
		e.item("break_glass", grants),
	), nil
}

func (e *encoder) request(r *chartguard.Request) (*ast.Term, error) {
	t, err := timeTerm(r.Time)
	if err != nil {
		return nil, fmt.Errorf("request.time: %w", err)
	}
	query := ast.NullTerm()
	if r.Query != nil {
		obj := ast.NewObjectWithCapacity(len(r.Query))
		for k, v := range r.Query {
			obj.Insert(e.str(k), e.strs(v))
		}
		query = ast.NewTerm(obj)
	}
	return ast.ObjectTerm(
		e.item("method", e.str(r.Method)),
		e.item("path", e.str(r.Path)),
		e.item("query", query),
		e.item("ip", e.str(r.IP)),
		e.item("time", t),
	), nil
}

func (e *encoder) resource(r *chartguard.Resource) *ast.Term {
	items := make([][2]*ast.Term, 0, 11)
	items = append(items, e.item("kind", e.str(r.Kind)))
	items = e.appendString(items, "phase", r.Phase)
	items = append(items,
		e.item("type", e.str(r.Type)),
		e.item("id", e.str(r.ID)),
		e.item("patients", e.strs(r.Patients)),
		e.item("patient_status", e.str(r.PatientStatus)),
		e.item("action", e.str(r.Action)),
		e.item("interaction", e.str(r.Interaction)),
	)
	items = e.appendString(items, "operation", r.Operation)
	items = append(items, e.item("labels", e.strs(r.Labels)))
	return ast.ObjectTerm(items...)
}

func (e *encoder) relationships(m map[string]chartguard.Relationship) *ast.Term {
	if m == nil {
		return ast.NullTerm()
	}
	obj := ast.NewObjectWithCapacity(len(m))
	for patient, rel := range m {
		items := make([][2]*ast.Term, 0, 4)
		items = append(items,
			e.item("care_team", ast.InternedTerm(rel.CareTeam)),
			e.item("pcp", ast.InternedTerm(rel.PCP)),
		)
		if rel.EncounterDaysAgo != nil {
			items = append(items, e.item("encounter_days_ago", intTerm(int64(*rel.EncounterDaysAgo))))
		}
		items = e.appendString(items, "department", rel.Department)
		obj.Insert(e.str(patient), ast.ObjectTerm(items...))
	}
	return ast.NewTerm(obj)
}

func (e *encoder) item(key string, value *ast.Term) [2]*ast.Term {
	return [2]*ast.Term{e.str(key), value}
}

// appendString adds key unless s is empty (JSON omitempty).
func (e *encoder) appendString(items [][2]*ast.Term, key, s string) [][2]*ast.Term {
	if s == "" {
		return items
	}
	return append(items, e.item(key, e.str(s)))
}

// appendStrings adds key unless ss is empty (JSON omitempty).
func (e *encoder) appendStrings(items [][2]*ast.Term, key string, ss []string) [][2]*ast.Term {
	if len(ss) == 0 {
		return items
	}
	return append(items, e.item(key, e.strs(ss)))
}

// strs encodes ss as an array, or null if ss is nil.
func (e *encoder) strs(ss []string) *ast.Term {
	if ss == nil {
		return ast.NullTerm()
	}
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = e.str(s)
	}
	return ast.ArrayTerm(terms...)
}

func (e *encoder) str(s string) *ast.Term {
	if t, ok := e.terms[s]; ok {
		return t
	}
	return ast.StringTerm(jsonString(s))
}

// timeTerm encodes t as encoding/json does (RFC 3339 with nanoseconds),
// failing as it does for years outside 0000-9999.
func timeTerm(t time.Time) (*ast.Term, error) {
	b, err := t.MarshalText()
	if err != nil {
		return nil, err
	}
	return ast.StringTerm(string(b)), nil
}

func intTerm(n int64) *ast.Term {
	return ast.InternedTerm(n)
}

// jsonString returns s as encoding/json would transmit it: each byte of an
// invalid UTF-8 sequence becomes U+FFFD.
func jsonString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
