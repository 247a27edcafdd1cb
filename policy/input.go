package policy

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/chartguard/chartguard/chartguard"
)

// inputValue converts in to the AST value the policy sees as input.
//
// The result is exactly what ast.ValueFromReader would give for
// json.Marshal(in): the same keys (omitempty fields absent), null for nil
// slices and maps, RFC 3339 times, and invalid UTF-8 replaced as
// encoding/json replaces it. Building the terms directly is several times
// faster than the JSON round trip on this hot path; TestInputValueMatchesJSON
// holds the two in step, and fails when a field is added to the shared types
// without being added here.
func inputValue(in *chartguard.Input) (ast.Value, error) {
	session, err := sessionTerm(&in.Session)
	if err != nil {
		return nil, err
	}
	request, err := requestTerm(&in.Request)
	if err != nil {
		return nil, err
	}
	return ast.NewObject(
		item("user", identityTerm(&in.User)),
		item("token", tokenTerm(&in.Token)),
		item("session", session),
		item("request", request),
		item("resource", resourceTerm(&in.Resource)),
		item("relationship", relationshipsTerm(in.Relationship)),
		item("usage", ast.ObjectTerm(
			item("distinct_patients_window", intTerm(int64(in.Usage.DistinctPatientsWindow))),
		)),
	), nil
}

func identityTerm(u *chartguard.Identity) *ast.Term {
	items := make([][2]*ast.Term, 0, 9)
	items = append(items,
		item("iss", str(u.Issuer)),
		item("sub", str(u.Subject)),
	)
	items = appendString(items, "name", u.Name)
	items = appendString(items, "email", u.Email)
	items = append(items, item("roles", strs(u.Roles)))
	items = appendStrings(items, "groups", u.Groups)
	items = appendString(items, "department", u.Department)
	items = appendString(items, "fhir_user", u.FHIRUser)
	items = appendStrings(items, "patient_links", u.PatientLinks)
	return ast.ObjectTerm(items...)
}

func tokenTerm(t *chartguard.Token) *ast.Term {
	items := make([][2]*ast.Term, 0, 5)
	items = append(items, item("kind", str(t.Kind)))
	items = appendString(items, "client_id", t.ClientID)
	items = appendStrings(items, "scopes", t.Scopes)
	items = appendString(items, "launch_patient", t.LaunchPatient)
	items = appendString(items, "purpose_of_use", t.PurposeOfUse)
	return ast.ObjectTerm(items...)
}

func sessionTerm(s *chartguard.SessionInfo) (*ast.Term, error) {
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
				item("grant", str(g.Grant)),
				item("patient", str(g.Patient)),
				item("reason", str(g.Reason)),
				item("expires_at", expires),
			)
		}
		grants = ast.ArrayTerm(terms...)
	}
	return ast.ObjectTerm(
		item("mfa", ast.InternedTerm(s.MFA)),
		item("mfa_method", str(s.MFAMethod)),
		item("mfa_age_s", intTerm(s.MFAAgeS)),
		item("auth_age_s", intTerm(s.AuthAgeS)),
		item("break_glass", grants),
	), nil
}

func requestTerm(r *chartguard.Request) (*ast.Term, error) {
	t, err := timeTerm(r.Time)
	if err != nil {
		return nil, fmt.Errorf("request.time: %w", err)
	}
	query := ast.NullTerm()
	if r.Query != nil {
		obj := ast.NewObjectWithCapacity(len(r.Query))
		for k, v := range r.Query {
			obj.Insert(str(k), strs(v))
		}
		query = ast.NewTerm(obj)
	}
	return ast.ObjectTerm(
		item("method", str(r.Method)),
		item("path", str(r.Path)),
		item("query", query),
		item("ip", str(r.IP)),
		item("time", t),
	), nil
}

func resourceTerm(r *chartguard.Resource) *ast.Term {
	items := make([][2]*ast.Term, 0, 11)
	items = append(items, item("kind", str(r.Kind)))
	items = appendString(items, "phase", r.Phase)
	items = append(items,
		item("type", str(r.Type)),
		item("id", str(r.ID)),
		item("patients", strs(r.Patients)),
		item("patient_status", str(r.PatientStatus)),
		item("action", str(r.Action)),
		item("interaction", str(r.Interaction)),
	)
	items = appendString(items, "operation", r.Operation)
	items = append(items, item("labels", strs(r.Labels)))
	return ast.ObjectTerm(items...)
}

func relationshipsTerm(m map[string]chartguard.Relationship) *ast.Term {
	if m == nil {
		return ast.NullTerm()
	}
	obj := ast.NewObjectWithCapacity(len(m))
	for patient, rel := range m {
		items := make([][2]*ast.Term, 0, 4)
		items = append(items,
			item("care_team", ast.InternedTerm(rel.CareTeam)),
			item("pcp", ast.InternedTerm(rel.PCP)),
		)
		if rel.EncounterDaysAgo != nil {
			items = append(items, item("encounter_days_ago", intTerm(int64(*rel.EncounterDaysAgo))))
		}
		items = appendString(items, "department", rel.Department)
		obj.Insert(str(patient), ast.ObjectTerm(items...))
	}
	return ast.NewTerm(obj)
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

func item(key string, value *ast.Term) [2]*ast.Term {
	return [2]*ast.Term{ast.InternedTerm(key), value}
}

// appendString adds key unless s is empty (JSON omitempty).
func appendString(items [][2]*ast.Term, key, s string) [][2]*ast.Term {
	if s == "" {
		return items
	}
	return append(items, item(key, str(s)))
}

// appendStrings adds key unless ss is empty (JSON omitempty).
func appendStrings(items [][2]*ast.Term, key string, ss []string) [][2]*ast.Term {
	if len(ss) == 0 {
		return items
	}
	return append(items, item(key, strs(ss)))
}

// strs encodes ss as an array, or null if ss is nil.
func strs(ss []string) *ast.Term {
	if ss == nil {
		return ast.NullTerm()
	}
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = str(s)
	}
	return ast.ArrayTerm(terms...)
}

func str(s string) *ast.Term {
	return ast.InternedTerm(jsonString(s))
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
