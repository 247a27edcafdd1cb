package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/chartguard/chartguard/chartguard"
)

// event builds the exchange's audit event. It holds identifiers only.
func (p *Proxy) event(x *exchange, status int, bytes int64) *chartguard.Event {
	ev := &chartguard.Event{
		Action:  chartguard.ActionHTTP,
		Outcome: chartguard.OutcomeForStatus(status),
		Client:  chartguard.EventClient{IP: x.ip, UserAgent: x.userAgent},
		Request: chartguard.EventRequest{ID: x.requestID, Method: x.method, Path: x.path,
			Status: status, Bytes: bytes,
			DurationMS: float64(p.now().Sub(x.start).Microseconds()) / 1000},
		Count: 1,
	}
	if q := x.target.RawQuery; q != "" && x.resource != nil {
		ev.Request.Path += "?" + q
	}
	if r := x.resource; r != nil {
		ev.Action = r.Action
		ev.Resource = &chartguard.EventResource{Kind: r.Kind, Interaction: r.Interaction,
			Type: r.Type, ID: r.ID, Patients: slices.Clone(r.Patients),
			PatientStatus: r.PatientStatus, Labels: r.Labels}
		if x.checked {
			// The response check proved what left: the request's patients
			// and those of every delivered resource.
			ev.Resource.Patients, ev.Resource.Labels = exposedPatients(x)
			ev.Resource.PatientStatus = chartguard.PatientsNone
			if len(ev.Resource.Patients) > 0 {
				ev.Resource.PatientStatus = chartguard.PatientsKnown
			}
		}
	} else {
		ev.Resource = &chartguard.EventResource{Kind: chartguard.KindProxy, Patients: []string{},
			PatientStatus: chartguard.PatientsNone}
	}
	if pr := x.principal; pr != nil {
		ev.User = &chartguard.EventUser{Issuer: pr.Identity.Issuer, Subject: pr.Identity.Subject,
			Name: pr.Identity.Name, Roles: pr.Identity.Roles, MFA: pr.Session.MFAMethod}
		if pr.Token.Kind == chartguard.TokenSession {
			ev.User.Session = pr.TokenHash // the session id's hash, never the id
		}
		ev.Client.ID = pr.Token.ClientID
	}
	if x.action != "" {
		ev.Action = x.action
	}
	if d := x.decision; d != nil {
		ev.Decision = &chartguard.EventDecision{ID: d.ID, Revision: d.Revision,
			Reasons: d.Reasons, BreakGlass: false, Tags: d.Obligations.Tags}
		if x.principal != nil {
			ev.Decision.PurposeOfUse = x.principal.Token.PurposeOfUse
		}
	}
	return ev
}

var requestIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]{8,128}$`)

// requestID keeps a well-formed client X-Request-Id (so a caller can
// correlate) and otherwise makes one. The pattern leaves no room for log or
// header injection.
func requestID(client string) string {
	if requestIDRe.MatchString(client) {
		return client
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// boundedRawPath keeps the raw path of a request that never normalised, for
// its audit event: no query (it may hold identifiers in odd places), at most
// 512 bytes. JSON encoding escapes whatever control bytes it holds.
func boundedRawPath(uri string) string {
	for i := 0; i < len(uri); i++ {
		if uri[i] == '?' {
			uri = uri[:i]
			break
		}
	}
	return truncate(uri, 512)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

func (p *Proxy) now() time.Time { return p.clock() }
