package policy

import (
	"encoding/binary"
	"maps"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/chartguard/chartguard/chartguard"
)

// A Memo lets the decisions of one request reuse one another. The
// response phase decides every resource a response exposes, and most are
// alike to the policy: the Observations of one patient in a search
// differ in their ids, which the default policy does not read. With a
// Memo, [Engine.DecideWith] evaluates such an input once and gives the
// next ones the same decision, each with its own ID.
//
// It is sound because an evaluation is a function of the input, the loaded
// policy and data, and the evaluation time (the request time, part of the
// input): the key is every field of the input, but resource.id when no
// rule of the policy refers to it (see [inputFields]); a Memo holds
// decisions of one engine only; and an engine whose policy calls a
// built-in whose result can differ between evaluations (http.send,
// rand.intn, uuid.rfc4122, ...: those OPA marks non-deterministic, except
// time.now_ns, which is the request time) remembers nothing. Errors are
// never remembered. TestMemoKeyCoversEveryField holds the key in step with
// the input types.
//
// The zero Memo is ready to use. A Memo is for one request: it is not safe
// for concurrent use, and it holds at most memoSize decisions (a bundle of
// many different resources decides the rest one by one).
type Memo struct {
	engine *Engine
	key    []byte // the key of the decision being made
	known  map[string]chartguard.Decision
}

// memoSize bounds a Memo.
const memoSize = 256

// lookup returns the decision remembered for in, if any, and makes in's
// key the one remember uses.
func (m *Memo) lookup(e *Engine, in *chartguard.Input) (chartguard.Decision, bool) {
	if m.engine != e {
		m.engine, m.known = e, nil
	}
	m.key = appendKey(m.key[:0], in, !e.readsResourceID)
	d, ok := m.known[string(m.key)]
	if !ok {
		return chartguard.Decision{}, false
	}
	return cloneDecision(d), true
}

// remember keeps d as the decision for the input lookup was last given.
func (m *Memo) remember(d chartguard.Decision) {
	if m.known == nil {
		m.known = make(map[string]chartguard.Decision)
	}
	if len(m.known) < memoSize {
		m.known[string(m.key)] = cloneDecision(d)
	}
}

// cloneDecision copies d's lists, so that no caller can change another's.
func cloneDecision(d chartguard.Decision) chartguard.Decision {
	d.Reasons = slices.Clone(d.Reasons)
	d.BreakGlass.Reasons = slices.Clone(d.BreakGlass.Reasons)
	d.Obligations.Redact = slices.Clone(d.Obligations.Redact)
	d.Obligations.Tags = slices.Clone(d.Obligations.Tags)
	return d
}

// appendKey appends a key for in to b: two inputs have the same key
// exactly when every field is equal (nil and empty lists apart, as in
// JSON), resource.id left out when skipID. Strings and lists are length
// prefixed, maps in key order.
func appendKey(b []byte, in *chartguard.Input, skipID bool) []byte {
	u := &in.User
	b = appendStrs(b, u.Issuer, u.Subject, u.Name, u.Email, u.Department, u.FHIRUser)
	b = appendList(b, u.Roles)
	b = appendList(b, u.Groups)
	b = appendList(b, u.PatientLinks)
	t := &in.Token
	b = appendStrs(b, t.Kind, t.ClientID, t.LaunchPatient, t.PurposeOfUse)
	b = appendList(b, t.Scopes)
	s := &in.Session
	b = appendBool(b, s.MFA)
	b = appendStrs(b, s.MFAMethod)
	b = binary.AppendVarint(b, s.MFAAgeS)
	b = binary.AppendVarint(b, s.AuthAgeS)
	b = appendBool(b, s.BreakGlass == nil)
	b = binary.AppendUvarint(b, uint64(len(s.BreakGlass)))
	for i := range s.BreakGlass {
		g := &s.BreakGlass[i]
		b = appendStrs(b, g.Grant, g.Patient, g.Reason)
		b = appendTime(b, g.ExpiresAt)
	}
	r := &in.Request
	b = appendStrs(b, r.Method, r.Path, r.IP)
	b = appendTime(b, r.Time)
	b = appendBool(b, r.Query == nil)
	b = binary.AppendUvarint(b, uint64(len(r.Query)))
	for _, k := range slices.Sorted(maps.Keys(r.Query)) {
		b = appendStrs(b, k)
		b = appendList(b, r.Query[k])
	}
	res := &in.Resource
	id := res.ID
	if skipID {
		id = ""
	}
	b = appendStrs(b, res.Kind, res.Phase, res.Type, id, res.PatientStatus, res.Action, res.Interaction, res.Operation)
	b = appendList(b, res.Patients)
	b = appendList(b, res.Labels)
	b = appendBool(b, in.Relationship == nil)
	b = binary.AppendUvarint(b, uint64(len(in.Relationship)))
	for _, p := range slices.Sorted(maps.Keys(in.Relationship)) {
		rel := in.Relationship[p]
		b = appendStrs(b, p, rel.Department)
		b = appendBool(b, rel.CareTeam)
		b = appendBool(b, rel.PCP)
		b = appendBool(b, rel.EncounterDaysAgo == nil)
		if rel.EncounterDaysAgo != nil {
			b = binary.AppendVarint(b, int64(*rel.EncounterDaysAgo))
		}
	}
	return binary.AppendVarint(b, int64(in.Usage.DistinctPatientsWindow))
}

func appendStrs(b []byte, ss ...string) []byte {
	for _, s := range ss {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// appendList tells nil from empty, as JSON does (null, []).
func appendList(b []byte, ss []string) []byte {
	b = appendBool(b, ss == nil)
	b = binary.AppendUvarint(b, uint64(len(ss)))
	return appendStrs(b, ss...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// appendTime keeps the instant and the zone offset (JSON writes both).
func appendTime(b []byte, t time.Time) []byte {
	_, offset := t.Zone()
	b = binary.AppendVarint(b, t.Unix())
	b = binary.AppendVarint(b, int64(t.Nanosecond()))
	return binary.AppendVarint(b, int64(offset))
}

// deterministic reports whether every built-in the modules call returns
// the same result for the same operands within one request: none that OPA
// marks non-deterministic, but time.now_ns, which Decide fixes to the
// request time.
func deterministic(modules map[string]*ast.Module) bool {
	ok := true
	for _, m := range modules {
		ast.WalkExprs(m, func(x *ast.Expr) bool {
			if !x.IsCall() {
				return !ok
			}
			name := x.Operator().String()
			if b, found := ast.BuiltinMap[name]; found && b.Nondeterministic && name != ast.NowNanos.Name {
				ok = false
			}
			return !ok
		})
	}
	return ok
}
