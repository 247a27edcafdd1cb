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
// The result is what ast.ValueFromReader would give for json.Marshal(in):
// the same keys (omitempty fields absent), null for nil slices and maps,
// RFC 3339 times, and invalid UTF-8 replaced as encoding/json replaces it.
// Building the terms directly is several times faster than the JSON round
// trip on this hot path (BenchmarkInputValue); TestInputValueMatchesJSON
// holds the two in step and fails when a field is added to the shared types
// without being added here.
//
// An encoder built for a policy leaves out the parts of the input that no
// rule of that policy refers to (see [inputFields]): the policy cannot
// observe them, and skipping them saves most of the encoding.
//
// An encoder is immutable after newEncoder: it shares prebuilt terms for
// the object keys and the common enumerated values with every input it
// builds. Evaluation never modifies input terms (OPA shares interned terms
// the same way), so concurrent use is safe.
type encoder struct {
	terms map[string]*ast.Term
	use   *fields
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

// newEncoder returns an encoder that builds the parts of the input use
// names (allFields for all of it) and also shares a term for each of
// extra (role and type names from the policy's data, say).
func newEncoder(use *fields, extra ...string) *encoder {
	shared := sharedStrings()
	terms := make(map[string]*ast.Term, len(shared)+len(extra))
	for _, s := range append(shared, extra...) {
		if utf8.ValidString(s) {
			terms[s] = ast.StringTerm(s)
		}
	}
	return &encoder{terms: terms, use: use}
}

// object collects the items of one input object, leaving out the keys the
// policy does not read. The items live in the object itself, on the
// caller's stack: ast.NewObject copies them. Every object of the input
// has at most maxKeys keys (resource has the most);
// TestInputObjectsFitMaxKeys fails when a field added to a shared type
// would not fit.
type object struct {
	e     *encoder
	use   *fields
	n     int
	items [maxKeys][2]*ast.Term
}

const maxKeys = 10

func (e *encoder) object(use *fields) object { return object{e: e, use: use} }

// wants reports whether the policy reads key; the value need not be built
// otherwise.
func (o *object) wants(key string) bool { return o.use.get(key) != nil }

func (o *object) add(key string, value *ast.Term) {
	o.items[o.n] = [2]*ast.Term{o.e.str(key), value}
	o.n++
}

func (o *object) str(key, s string) {
	if o.wants(key) {
		o.add(key, o.e.str(s))
	}
}

// optStr adds key unless s is empty (JSON omitempty).
func (o *object) optStr(key, s string) {
	if s != "" {
		o.str(key, s)
	}
}

func (o *object) strs(key string, ss []string) {
	if o.wants(key) {
		o.add(key, o.e.strs(ss))
	}
}

// optStrs adds key unless ss is empty (JSON omitempty).
func (o *object) optStrs(key string, ss []string) {
	if len(ss) > 0 {
		o.strs(key, ss)
	}
}

func (o *object) boolean(key string, b bool) {
	if o.wants(key) {
		o.add(key, ast.InternedTerm(b))
	}
}

func (o *object) int(key string, n int64) {
	if o.wants(key) {
		o.add(key, ast.InternedTerm(n))
	}
}

// time adds t, failing as encoding/json does for years outside 0000-9999
// even when the policy does not read it, so an input is valid or not
// whatever the policy.
func (o *object) time(key string, t time.Time) error {
	if !o.wants(key) {
		return checkTime(t)
	}
	b, err := t.MarshalText()
	if err != nil {
		return err
	}
	o.add(key, ast.StringTerm(string(b)))
	return nil
}

// checkTime fails where encoding/json would, without building the text.
func checkTime(t time.Time) error {
	var buf [64]byte
	_, err := t.AppendText(buf[:0])
	return err
}

func (o *object) term() *ast.Term { return ast.ObjectTerm(o.items[:o.n]...) }

func (e *encoder) input(in *chartguard.Input) (ast.Value, error) {
	o := e.object(e.use)
	if u := e.use.get("user"); u != nil {
		o.add("user", e.identity(&in.User, u))
	}
	if u := e.use.get("token"); u != nil {
		o.add("token", e.token(&in.Token, u))
	}
	session, err := e.session(&in.Session, e.use.get("session"))
	if err != nil {
		return nil, err
	}
	if session != nil {
		o.add("session", session)
	}
	request, err := e.request(&in.Request, e.use.get("request"))
	if err != nil {
		return nil, err
	}
	if request != nil {
		o.add("request", request)
	}
	if u := e.use.get("resource"); u != nil {
		o.add("resource", e.resource(&in.Resource, u))
	}
	if u := e.use.get("relationship"); u != nil {
		o.add("relationship", e.relationships(in.Relationship, u))
	}
	if u := e.use.get("usage"); u != nil {
		usage := e.object(u)
		usage.int("distinct_patients_window", int64(in.Usage.DistinctPatientsWindow))
		o.add("usage", usage.term())
	}
	return ast.NewObject(o.items[:o.n]...), nil
}

func (e *encoder) identity(u *chartguard.Identity, use *fields) *ast.Term {
	o := e.object(use)
	o.str("iss", u.Issuer)
	o.str("sub", u.Subject)
	o.optStr("name", u.Name)
	o.optStr("email", u.Email)
	o.strs("roles", u.Roles)
	o.optStrs("groups", u.Groups)
	o.optStr("department", u.Department)
	o.optStr("fhir_user", u.FHIRUser)
	o.optStrs("patient_links", u.PatientLinks)
	return o.term()
}

func (e *encoder) token(t *chartguard.Token, use *fields) *ast.Term {
	o := e.object(use)
	o.str("kind", t.Kind)
	o.optStr("client_id", t.ClientID)
	o.optStrs("scopes", t.Scopes)
	o.optStr("launch_patient", t.LaunchPatient)
	o.optStr("purpose_of_use", t.PurposeOfUse)
	return o.term()
}

// session returns nil if the policy does not read the session (but still
// checks that its times can be encoded).
func (e *encoder) session(s *chartguard.SessionInfo, use *fields) (*ast.Term, error) {
	if use.get("break_glass") == nil {
		for i := range s.BreakGlass {
			if err := checkTime(s.BreakGlass[i].ExpiresAt); err != nil {
				return nil, fmt.Errorf("session.break_glass[%d].expires_at: %w", i, err)
			}
		}
	}
	if use == nil {
		return nil, nil
	}
	o := e.object(use)
	o.boolean("mfa", s.MFA)
	o.str("mfa_method", s.MFAMethod)
	o.int("mfa_age_s", s.MFAAgeS)
	o.int("auth_age_s", s.AuthAgeS)
	if o.wants("break_glass") {
		grants, err := e.grants(s.BreakGlass)
		if err != nil {
			return nil, err
		}
		o.add("break_glass", grants)
	}
	return o.term(), nil
}

// grants encodes every field of every grant: array elements are read by
// index, so inputFields does not tell them apart.
func (e *encoder) grants(gs []chartguard.BTGGrant) (*ast.Term, error) {
	if gs == nil {
		return ast.NullTerm(), nil
	}
	terms := make([]*ast.Term, len(gs))
	for i := range gs {
		g := &gs[i]
		o := e.object(allFields)
		o.str("grant", g.Grant)
		o.str("patient", g.Patient)
		o.str("reason", g.Reason)
		if err := o.time("expires_at", g.ExpiresAt); err != nil {
			return nil, fmt.Errorf("session.break_glass[%d].expires_at: %w", i, err)
		}
		terms[i] = o.term()
	}
	return ast.ArrayTerm(terms...), nil
}

// request returns nil if the policy does not read the request (but still
// checks that its time can be encoded).
func (e *encoder) request(r *chartguard.Request, use *fields) (*ast.Term, error) {
	if use == nil {
		if err := checkTime(r.Time); err != nil {
			return nil, fmt.Errorf("request.time: %w", err)
		}
		return nil, nil
	}
	o := e.object(use)
	o.str("method", r.Method)
	o.str("path", r.Path)
	if o.wants("query") {
		o.add("query", e.query(r.Query, use.get("query")))
	}
	o.str("ip", r.IP)
	if err := o.time("time", r.Time); err != nil {
		return nil, fmt.Errorf("request.time: %w", err)
	}
	return o.term(), nil
}

func (e *encoder) query(q map[string][]string, use *fields) *ast.Term {
	if q == nil {
		return ast.NullTerm()
	}
	obj := ast.NewObjectWithCapacity(len(q))
	for k, v := range q {
		if use.wantsKey(k) {
			obj.Insert(e.str(k), e.strs(v))
		}
	}
	return ast.NewTerm(obj)
}

func (e *encoder) resource(r *chartguard.Resource, use *fields) *ast.Term {
	o := e.object(use)
	o.str("kind", r.Kind)
	o.optStr("phase", r.Phase)
	o.str("type", r.Type)
	o.str("id", r.ID)
	o.strs("patients", r.Patients)
	o.str("patient_status", r.PatientStatus)
	o.str("action", r.Action)
	o.str("interaction", r.Interaction)
	o.optStr("operation", r.Operation)
	o.strs("labels", r.Labels)
	return o.term()
}

func (e *encoder) relationships(m map[string]chartguard.Relationship, use *fields) *ast.Term {
	if m == nil {
		return ast.NullTerm()
	}
	obj := ast.NewObjectWithCapacity(len(m))
	for patient, rel := range m {
		if !use.wantsKey(patient) {
			continue
		}
		// Deeper levels are always whole (see inputFields).
		o := e.object(allFields)
		o.boolean("care_team", rel.CareTeam)
		o.boolean("pcp", rel.PCP)
		if rel.EncounterDaysAgo != nil {
			o.int("encounter_days_ago", int64(*rel.EncounterDaysAgo))
		}
		o.optStr("department", rel.Department)
		obj.Insert(e.str(patient), o.term())
	}
	return ast.NewTerm(obj)
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
