package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/examples/fhir-demo/devissuer"
	"github.com/chartguard/chartguard/proxy"
)

// TestRoles drives each role of the default policy through a real
// ChartGuard in front of the demo EMR: what it may do works, what it may not
// is refused with a reason, and each request leaves the right audit event.
func TestRoles(t *testing.T) {
	e := startEnv(t, envOptions{})
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/p2"}}`
	cases := []struct {
		role, sub, fhirUser string
		method, path, body  string
		want                int
		reason              string // substring of the OperationOutcome on a 403
	}{
		{role: "physician", method: "GET", path: "/fhir/Patient/p1", want: 200},
		{role: "physician", method: "GET", path: "/fhir/Observation?patient=p1", want: 200},
		{role: "physician", method: "GET", path: "/fhir/Observation/obs-p1-1", want: 200},
		{role: "physician", method: "GET", path: "/fhir/Patient/p1/Condition", want: 200},
		{role: "physician", method: "GET", path: "/fhir/Observation?code=8867-4", want: 200}, // filtered to pr1's patients
		{role: "physician", method: "GET", path: "/fhir/Patient/p2", want: 403, reason: "not on the patient's care team"},
		{role: "physician", method: "GET", path: "/fhir/Observation?patient=p2", want: 403, reason: "not on the patient's care team"},
		{role: "physician", method: "DELETE", path: "/fhir/Observation/obs-p1-2", want: 403, reason: "delete"},
		{role: "nurse", method: "GET", path: "/fhir/MedicationRequest?patient=p2", want: 200},
		{role: "nurse", method: "POST", path: "/fhir/Observation", body: obs, want: 201},
		{role: "nurse", method: "PUT", path: "/fhir/Patient/p2", body: `{"resourceType":"Patient","id":"p2"}`, want: 403},
		{role: "registration", method: "GET", path: "/fhir/Patient/p1", want: 200},
		{role: "registration", method: "GET", path: "/fhir/Patient/p3", want: 403, reason: "restricted record"},
		{role: "registration", method: "GET", path: "/fhir/Observation?patient=p3", want: 403, reason: "Observation"},
		{role: "billing", method: "GET", path: "/fhir/Encounter?patient=p4", want: 200},
		{role: "billing", method: "GET", path: "/fhir/Condition?patient=p4", want: 403},
		{role: "lab", method: "GET", path: "/fhir/Observation?subject=Patient/p5", want: 200},
		{role: "lab", method: "GET", path: "/fhir/MedicationRequest?patient=p5", want: 403},
		{role: "pharmacist", method: "GET", path: "/fhir/MedicationRequest?patient=p6", want: 200},
		{role: "pharmacist", method: "GET", path: "/fhir/DocumentReference?patient=p6", want: 403},
		{role: "privacy-officer", method: "GET", path: "/fhir/Patient/p1", want: 200},
		{role: "privacy-officer", method: "GET", path: "/fhir/Patient/p7", want: 403, reason: "VIP patient's record"},
		{role: "privacy-officer", method: "GET", path: "/fhir/Observation?patient=p7", want: 403},
		{role: "it-admin", method: "GET", path: "/fhir/metadata", want: 200},
		{role: "it-admin", method: "GET", path: "/fhir/Patient/p1", want: 403},
		{role: "patient", fhirUser: "Patient/p9", method: "GET", path: "/fhir/Patient/p9", want: 200},
		{role: "patient", fhirUser: "Patient/p9", method: "GET", path: "/fhir/Observation?patient=p9", want: 200},
		{role: "patient", fhirUser: "Patient/p9", method: "GET", path: "/fhir/Patient/p10", want: 403},
		{role: "patient", fhirUser: "Patient/p9", method: "GET", path: "/fhir/Observation?patient=p9,p10", want: 403},
		{role: "janitor", method: "GET", path: "/fhir/Patient/p1", want: 403, reason: "no role"},
		{role: "janitor", method: "GET", path: "/fhir/metadata", want: 200},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s %s %s", c.role, c.method, c.path)
		t.Run(name, func(t *testing.T) {
			sub := "user-" + c.role
			tok := e.token(t, c.role, sub, func(r *devissuer.TokenRequest) { r.FHIRUser = c.fhirUser })
			var body *strings.Reader
			hdr := map[string]string{}
			if c.body != "" {
				hdr["Content-Type"] = "application/fhir+json"
			}
			body = strings.NewReader(c.body)
			status, respBody, rh := e.call(t, c.method, c.path, tok, body, hdr)
			require.Equal(t, c.want, status, respBody)
			if c.want == 403 {
				var oo struct {
					ResourceType string `json:"resourceType"`
					Issue        []struct{ Diagnostics string }
				}
				require.NoError(t, json.Unmarshal([]byte(respBody), &oo))
				assert.Equal(t, "OperationOutcome", oo.ResourceType)
				if c.reason != "" {
					assert.Contains(t, oo.Issue[0].Diagnostics, c.reason)
				}
			}
			ev := lastEventWithID(t, e, rh.Get("X-Request-Id"))
			assert.Equal(t, c.want, ev.Request.Status)
			require.NotNil(t, ev.User)
			assert.Equal(t, sub, ev.User.Subject)
			require.NotNil(t, ev.Decision)
			assert.NotEmpty(t, ev.Decision.ID)
			assert.NotEmpty(t, ev.Decision.Revision)
			if c.want == 403 {
				assert.Equal(t, "denied", ev.Outcome)
				assert.NotEmpty(t, ev.Decision.Reasons)
			} else {
				assert.Equal(t, "allowed", ev.Outcome)
			}
		})
	}
}

// lastEventWithID finds the event for one request. Durable audit means it is
// on disk by the time the response headers arrive.
func lastEventWithID(t *testing.T, e *env, id string) chartguard.Event {
	t.Helper()
	require.NotEmpty(t, id)
	var found []chartguard.Event
	for _, ev := range e.events(t) {
		if ev.Request.ID == id {
			found = append(found, ev)
		}
	}
	require.Len(t, found, 1, "exactly one event for request %s", id)
	return found[0]
}

func TestBearerRejected(t *testing.T) {
	e := startEnv(t, envOptions{})
	cases := []struct {
		name string
		tok  func() string
	}{
		{"none", func() string { return "" }},
		{"garbage", func() string { return "not-a-jwt" }},
		{"expired", func() string {
			return e.token(t, "physician", "u1", func(r *devissuer.TokenRequest) { r.ExpOffset = -10 * time.Minute })
		}},
		{"not yet valid", func() string {
			return e.token(t, "physician", "u1", func(r *devissuer.TokenRequest) { r.NBFOffset = 10 * time.Minute })
		}},
		{"ID token (nonce)", func() string {
			return e.token(t, "physician", "u1", func(r *devissuer.TokenRequest) { r.Nonce = "n-123" })
		}},
		{"ID token typ", func() string {
			return e.token(t, "physician", "u1", func(r *devissuer.TokenRequest) { r.Typ = "id+jwt" })
		}},
		{"wrong audience", func() string {
			return e.token(t, "physician", "u1", func(r *devissuer.TokenRequest) { r.Audience = "other-api" })
		}},
		{"foreign issuer", func() string {
			other, _ := startIssuer(t)
			tok, err := other.Token(devissuer.TokenRequest{Role: "physician"})
			require.NoError(t, err)
			return tok
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body, h := e.call(t, "GET", "/fhir/Patient/p1", c.tok(), nil, nil)
			assert.Equal(t, http.StatusUnauthorized, status, body)
			assert.Contains(t, h.Get("WWW-Authenticate"), `Bearer realm="chartguard"`)
			ev := lastEventWithID(t, e, h.Get("X-Request-Id"))
			assert.Equal(t, "denied", ev.Outcome)
			assert.Nil(t, ev.User)
		})
	}
	for _, req := range e.upstreamSaw() {
		assert.NotEqual(t, "/fhir/Patient/p1", req.URL.Path, "no rejected request reached the EMR")
	}
}

// TestSpoofedHeadersNeverReachUpstream checks, at the real demo EMR, that a
// client cannot assert identity, method or ChartGuard cookies.
func TestSpoofedHeadersNeverReachUpstream(t *testing.T) {
	e := startEnv(t, envOptions{})
	tok := e.token(t, "physician", "u1")
	status, body, _ := e.call(t, "GET", "/fhir/Patient/p1", tok, nil, map[string]string{
		"X-Forwarded-User":       "chief",
		"X_Forwarded_Email":      "chief@example.org",
		"x-forwarded-groups":     "emr-admins",
		"X-Chartguard-Assertion": "forged",
		"X-Chartguard-User":      "chief",
		"X-Http-Method-Override": "DELETE",
		"Cookie":                 "__Host-chartguard_session=stolen; emr_pref=1",
	})
	require.Equal(t, 200, status, body)
	saw := e.upstreamSaw()
	require.NotEmpty(t, saw)
	got := saw[len(saw)-1]
	assert.Equal(t, "GET", got.Method)
	for name := range got.Header {
		n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		assert.False(t, strings.HasPrefix(n, "x-chartguard-") || n == "x-forwarded-user" ||
			n == "x-forwarded-email" || n == "x-forwarded-groups" || n == "x-http-method-override" ||
			n == "authorization", "upstream received %s", name)
	}
	assert.Equal(t, "emr_pref=1", got.Header.Get("Cookie"))
}

// TestNRequestsNEvents: N requests of every kind, concurrently, give exactly
// N events (counting aggregates) with correct fields.
func TestNRequestsNEvents(t *testing.T) {
	e := startEnv(t, envOptions{extraYAML: "limits: {unauthenticated_rps: 5}\n"})
	tokens := map[string]string{
		"physician": e.token(t, "physician", "doc-1"),
		"billing":   e.token(t, "billing", "bill-1"),
	}
	type req struct{ role, path string }
	var reqs []req
	panel := []string{"p1", "p6", "p24", "p10", "p13"} // on pr1's care teams, none VIP or employee
	for i := 1; i <= 20; i++ {
		reqs = append(reqs,
			req{"physician", "/fhir/Patient/" + panel[i%len(panel)]},
			req{"physician", "/fhir/Observation?patient=" + panel[i%len(panel)]},
			req{"billing", fmt.Sprintf("/fhir/Observation?patient=p%d", i)}, // 403
			req{"", fmt.Sprintf("/fhir/Patient/p%d", i)},                    // 401 or 429
			req{"physician", "/fhir/Patient/p1/%2e%2e/x"},                   // 400
		)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, r := range reqs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			e.call(t, "GET", r.path, tokens[r.role], nil, nil)
		}()
	}
	wg.Wait()
	e.stop() // flushes aggregated 429 events and closes the log

	evs := e.events(t)
	total := 0
	byStatus := map[int]int{}
	for i, ev := range evs {
		assert.Equal(t, uint64(i), ev.Seq, "seq dense from 0")
		assert.Equal(t, 1, ev.V)
		assert.Equal(t, "e2e-1", ev.Node)
		total += ev.Count
		byStatus[ev.Request.Status] += ev.Count
		switch ev.Request.Status {
		case 200:
			assert.Equal(t, "allowed", ev.Outcome)
			assert.Equal(t, "doc-1", ev.User.Subject)
			assert.Equal(t, []string{"physician"}, ev.User.Roles)
			assert.Equal(t, "known", ev.Resource.PatientStatus)
			assert.Len(t, ev.Resource.Patients, 1)
		case 403:
			assert.Equal(t, "bill-1", ev.User.Subject)
			assert.Equal(t, "search", ev.Action)
		case 400:
			assert.Equal(t, "http", ev.Action)
		}
	}
	assert.Equal(t, len(reqs), total, "sum of count equals requests")
	assert.Equal(t, 40, byStatus[200])
	assert.Equal(t, 20, byStatus[403])
	assert.Equal(t, 20, byStatus[400])
	assert.Equal(t, 20, byStatus[401]+byStatus[429])
}

// TestLogsCarryNoIdentifiers: operational logs name requests by id only —
// never a path, a patient, a user or a token — even on failures.
func TestLogsCarryNoIdentifiers(t *testing.T) {
	e := startEnv(t, envOptions{mutate: func(c *proxy.Config) {
		c.Policy.EvalTimeout = time.Nanosecond // every decision times out: logged, denied
	}})
	tok := e.token(t, "physician", "secret-subject-42")
	status, _, _ := e.call(t, "GET", "/fhir/Patient/p42", tok, nil, nil)
	assert.Equal(t, 403, status, "a policy timeout denies")
	e.call(t, "GET", "/fhir/Patient/p43", "forged."+tok[10:], nil, nil)
	e.call(t, "GET", "/fhir/Patient/p44/%2e%2e", tok, nil, nil)
	e.stop()
	logs := e.logs.String()
	require.NotEmpty(t, logs, "the policy failure was logged")
	for _, secret := range []string{"p42", "p43", "p44", "/fhir", "secret-subject-42", tok[:20], "Bearer"} {
		assert.NotContains(t, logs, secret)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "slog JSON: %s", line)
	}
}
