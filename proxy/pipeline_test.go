package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

var good = http.Header{"Authorization": {"Bearer good"}}

func withHeaders(extra map[string]string) http.Header {
	h := good.Clone()
	for k, v := range extra {
		h[k] = []string{v}
	}
	return h
}

func TestHeaderHygiene(t *testing.T) {
	h := newHarness(t, nil, nil, nil)
	spoofed := map[string]string{
		"X-Forwarded-User":               "admin",
		"x-forwarded-email":              "admin@example.org",
		"X_Forwarded_Groups":             "emr-admins",
		"X-FORWARDED-PREFERRED-USERNAME": "admin",
		"X-Chartguard-User":              "admin",
		"x_chartguard_assertion":         "forged",
		"X-Forwarded-For":                "6.6.6.6",
		"Forwarded":                      "for=6.6.6.6",
		"X-Real-Ip":                      "6.6.6.6",
		"X-Http-Method-Override":         "DELETE",
		"X-HTTP-Method":                  "DELETE",
		"X-Method-Override":              "DELETE",
		"Cookie":                         "JSESSIONID=emr; __Host-chartguard_session=secret; chartguard_csrf=x; theme=dark",
		"X-Request-Id":                   "client-req-0001",
	}
	resp := h.do(t, "GET", "/fhir/Patient/p1", withHeaders(spoofed), "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "client-req-0001", resp.Header.Get("X-Request-Id"))
	assert.Equal(t, []string{"JSESSIONID=emr; Path=/"}, resp.Header.Values("Set-Cookie"),
		"the upstream cannot set ChartGuard's cookies")
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "upstream CORS headers are dropped")

	got := h.seen()
	require.Len(t, got, 1)
	up := got[0]
	assert.Equal(t, "GET", up.Method, "method overrides never reach the upstream")
	for name := range up.Header {
		n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		assert.False(t, strings.HasPrefix(n, "x-chartguard-"), "header %s forwarded", name)
		assert.NotContains(t, []string{"x-forwarded-user", "x-forwarded-email", "x-forwarded-groups",
			"x-forwarded-preferred-username", "x-real-ip", "x-http-method-override", "x-http-method",
			"x-method-override", "authorization", "forwarded"}, n, "header %s forwarded", name)
	}
	assert.Equal(t, "127.0.0.1", up.Header.Get("X-Forwarded-For"), "client address is the peer, not the spoofed header")
	assert.Equal(t, "JSESSIONID=emr; theme=dark", up.Header.Get("Cookie"))
	assert.Equal(t, "client-req-0001", up.Header.Get("X-Request-Id"))

	ev, _ := h.audit.all()
	require.Len(t, ev, 1)
	assert.Equal(t, "client-req-0001", ev[0].Request.ID)
	assert.Equal(t, "127.0.0.1", ev[0].Client.IP)
}

func TestPassAuthorization(t *testing.T) {
	h := newHarness(t, nil, func(c *Config) { c.Upstream.PassAuthorization = true }, nil)
	resp := h.do(t, "GET", "/fhir/Patient/p1", good, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "Bearer good", h.seen()[0].Header.Get("Authorization"))
}

func TestRequestIDGenerated(t *testing.T) {
	h := newHarness(t, nil, nil, nil)
	for _, bad := range []string{"short", "has space in it", strings.Repeat("a", 129), "semi;colon-id"} {
		resp := h.do(t, "GET", "/fhir/Patient/p1", withHeaders(map[string]string{"X-Request-Id": bad}), "")
		id := resp.Header.Get("X-Request-Id")
		assert.NotEqual(t, bad, id)
		assert.Regexp(t, `^[0-9a-f]{32}$`, id)
	}
}

func TestClientIPTrustedProxies(t *testing.T) {
	h := newHarness(t, nil, func(c *Config) { c.TrustedProxies = []string{"127.0.0.0/8", "10.0.0.0/8"} }, nil)
	cases := []struct{ xff, want string }{
		{"", "127.0.0.1"},
		{"203.0.113.9", "203.0.113.9"},
		{"6.6.6.6, 203.0.113.9, 10.1.2.3", "203.0.113.9"}, // right-most untrusted hop
		{"garbage, 10.1.2.3", "10.1.2.3"},
	}
	for _, c := range cases {
		hdr := good.Clone()
		if c.xff != "" {
			hdr.Set("X-Forwarded-For", c.xff)
		}
		h.do(t, "GET", "/fhir/Patient/p1", hdr, "")
	}
	ev, _ := h.audit.all()
	require.Len(t, ev, len(cases))
	for i, c := range cases {
		assert.Equal(t, c.want, ev[i].Client.IP, "X-Forwarded-For %q", c.xff)
	}
}

// TestOneEventPerRequest checks every way out of the pipeline commits
// exactly one event with the right outcome.
func TestOneEventPerRequest(t *testing.T) {
	deny := func(in *chartguard.Input) (chartguard.Decision, error) {
		if in.Resource.Type == "Observation" {
			return chartguard.Decision{Reasons: []string{"role physician may not read Observation"}}, nil
		}
		if in.Resource.Type == "Condition" {
			return chartguard.Decision{Allow: true}, errors.New("policy exploded")
		}
		return chartguard.Decision{Allow: true}, nil
	}
	h := newHarness(t, deny, nil, nil)
	cases := []struct {
		name, method, target string
		hdr                  http.Header
		status               int
		outcome, action      string
	}{
		{"allowed", "GET", "/fhir/Patient/p1", good, 200, "allowed", "read"},
		{"normalise reject", "GET", "/fhir/%2e%2e/admin", good, 400, "denied", "http"},
		{"classify reject", "GET", "/fhir/Patient/p1/a/b", good, 400, "denied", "http"},
		{"no credentials", "GET", "/fhir/Patient/p1", nil, 401, "denied", "read"},
		{"bad credentials", "GET", "/fhir/Patient/p1", http.Header{"Authorization": {"Bearer bad"}}, 401, "denied", "read"},
		{"policy deny", "GET", "/fhir/Observation?patient=p1", good, 403, "denied", "search"},
		{"policy error denies", "GET", "/fhir/Condition?patient=p1", good, 403, "denied", "search"},
		{"reserved prefix", "GET", "/.chartguard/nothing", good, 404, "denied", "http"},
		{"method override param", "GET", "/fhir/Patient/p1?_method=DELETE", good, 400, "denied", "http"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := h.audit.all()
			resp := h.do(t, c.method, c.target, c.hdr, "")
			body := readBody(t, resp)
			assert.Equal(t, c.status, resp.StatusCode, body)
			after, _ := h.audit.all()
			require.Len(t, after, len(before)+1, "exactly one event")
			ev := after[len(after)-1]
			assert.Equal(t, c.status, ev.Request.Status)
			assert.Equal(t, c.outcome, ev.Outcome)
			assert.Equal(t, c.action, ev.Action)
			assert.Equal(t, resp.Header.Get("X-Request-Id"), ev.Request.ID)
			if c.status >= 400 {
				var oo map[string]any
				require.NoError(t, json.Unmarshal([]byte(body), &oo), body)
				assert.Equal(t, "OperationOutcome", oo["resourceType"])
			}
			if c.status == 401 {
				assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
			}
		})
	}
	ev, _ := h.audit.all()
	for _, e := range ev {
		if e.Request.Status == 403 && e.Resource.Type == "Observation" {
			assert.Equal(t, []string{"role physician may not read Observation"}, e.Decision.Reasons)
			assert.Equal(t, "rev-test", e.Decision.Revision)
		}
	}
}

func TestUpstreamFailures(t *testing.T) {
	slow := make(chan struct{})
	t.Cleanup(func() { close(slow) })
	h := newHarness(t, nil, func(c *Config) { c.Upstream.Timeout = 200 * time.Millisecond },
		func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "slow") {
				select {
				case <-slow:
				case <-r.Context().Done():
				}
				return
			}
			w.WriteHeader(200)
		})
	resp := h.do(t, "GET", "/fhir/Patient/slow", good, "")
	assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)

	h.upstream.Close() // the EMR goes away
	resp = h.do(t, "GET", "/fhir/Patient/p1", good, "")
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)

	ev, _ := h.audit.all()
	require.Len(t, ev, 2)
	assert.Equal(t, []int{504, 502}, []int{ev[0].Request.Status, ev[1].Request.Status})
	assert.Equal(t, []string{"error", "error"}, []string{ev[0].Outcome, ev[1].Outcome})
}

func TestAuditFailureFailsClosed(t *testing.T) {
	h := newHarness(t, nil, nil, nil)
	h.audit.fail = true
	resp := h.do(t, "GET", "/fhir/Patient/p1", good, "")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Empty(t, h.seen(), "no patient request reaches the EMR while audit is down")
	committed, deferred := h.audit.all()
	assert.Empty(t, committed)
	require.Len(t, deferred, 1)
	assert.Equal(t, 503, deferred[0].Request.Status)
	assert.Equal(t, "error", deferred[0].Outcome)

	h.audit.fail = false
	resp = h.do(t, "GET", "/fhir/Patient/p1", good, "")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "recovers when the log is writable")
}

func TestUpstreamReceivesCanonicalTarget(t *testing.T) {
	h := newHarness(t, nil, nil, nil)
	cases := []struct{ in, want string }{
		{"//fhir//Patient///p1", "/fhir/Patient/p1"},
		{"/fhir/Patient/%70%31", "/fhir/Patient/p1"},
		{"/fhir/Observation?patient=p1&code=http%3A%2F%2Floinc.org%7C1-2&note=a+b", "/fhir/Observation?patient=p1&code=http://loinc.org|1-2&note=a%20b"},
		{"/fhir/Observation?patient=p1&date=ge2020-01-01&_count=5", "/fhir/Observation?patient=p1&date=ge2020-01-01&_count=5"},
	}
	for _, c := range cases {
		resp := h.do(t, "GET", c.in, good, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		got := h.seen()
		assert.Equal(t, c.want, got[len(got)-1].RequestURI)
	}
}

func TestSearchPostForwardedAsOneBody(t *testing.T) {
	var seen []*chartguard.Input
	h := newHarness(t, func(in *chartguard.Input) (chartguard.Decision, error) {
		seen = append(seen, in)
		return chartguard.Decision{Allow: true}, nil
	}, nil, nil)
	hdr := withHeaders(map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	resp := h.do(t, "POST", "/fhir/Observation/_search?patient=p1", hdr, "patient=p2&code=x")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	up := h.seen()[0]
	assert.Equal(t, "/fhir/Observation/_search", up.RequestURI)
	assert.Equal(t, "patient=p1&patient=p2&code=x", up.Body)
	require.Len(t, seen, 2, "the request, then the resource of the response")
	assert.Equal(t, chartguard.PhaseRequest, seen[0].Resource.Phase)
	assert.Equal(t, chartguard.PhaseResponse, seen[1].Resource.Phase)
	assert.Equal(t, []string{"p1", "p2"}, seen[0].Resource.Patients)
	assert.Equal(t, map[string][]string{"patient": {"p1", "p2"}, "code": {"x"}}, seen[0].Request.Query)
}

func TestUnauthenticatedRateLimit(t *testing.T) {
	h := newHarness(t, nil, func(c *Config) { c.Limits.UnauthenticatedRPS = 2 }, nil)
	codes := map[int]int{}
	const n = 12
	for range n {
		resp := h.do(t, "GET", "/fhir/Patient/p1", nil, "")
		codes[resp.StatusCode]++
	}
	assert.Positive(t, codes[429])
	assert.Equal(t, n, codes[401]+codes[429])
	// Authenticated callers are never throttled by it.
	assert.Equal(t, http.StatusOK, h.do(t, "GET", "/fhir/Patient/p1", good, "").StatusCode)

	h.proxy.flushAggregates(t.Context())
	ev, _ := h.audit.all()
	total, aggregated := 0, 0
	for _, e := range ev {
		if e.User == nil {
			total += e.Count
		}
		if e.Request.Status == 429 {
			aggregated++
			assert.Equal(t, codes[429], e.Count)
		}
	}
	assert.Equal(t, n, total, "sum of count equals requests")
	assert.Equal(t, 1, aggregated, "one aggregated event per address")
}

func TestCORS(t *testing.T) {
	h := newHarness(t, nil, func(c *Config) { c.CORS.AllowedOrigins = []string{"https://app.example.org"} }, nil)
	pre := http.Header{"Origin": {"https://app.example.org"}, "Access-Control-Request-Method": {"GET"}}
	resp := h.do(t, "OPTIONS", "/fhir/Patient/p1", pre, "")
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, "https://app.example.org", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "Authorization")

	pre.Set("Origin", "https://evil.example")
	resp = h.do(t, "OPTIONS", "/fhir/Patient/p1", pre, "")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Empty(t, h.seen(), "preflights never reach the upstream")
	ev, _ := h.audit.all()
	assert.Len(t, ev, 2)
}

func TestSMARTConfigurationUnauthenticated(t *testing.T) {
	h := newHarness(t, func(*chartguard.Input) (chartguard.Decision, error) {
		return chartguard.Decision{}, nil // deny everything
	}, nil, nil)
	resp := h.do(t, "GET", "/fhir/.well-known/smart-configuration", nil, "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp = h.do(t, "GET", "/fhir/metadata", nil, "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "metadata needs a caller")
}

func TestBodyLimit(t *testing.T) {
	h := newHarness(t, nil, func(c *Config) { c.Limits.MaxBody = 64 }, nil)
	hdr := withHeaders(map[string]string{"Content-Type": "application/fhir+json"})
	resp := h.do(t, "POST", "/fhir/Observation", hdr, strings.Repeat("x", 65))
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.Empty(t, h.seen(), "an oversized body never starts upstream")
	resp = h.do(t, "POST", "/fhir/Observation", hdr, `{"resourceType":"Observation"}`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	ev, _ := h.audit.all()
	require.Len(t, ev, 2)
	assert.Equal(t, "denied", ev[0].Outcome)
	assert.Equal(t, 413, ev[0].Request.Status)
}

// TestUncommittedCountsRequestsUntilTheirCommit: the count the audit
// writer sizes group commits by returns to zero whatever the outcome,
// including a throttled request whose event is aggregated.
func TestUncommittedCountsRequestsUntilTheirCommit(t *testing.T) {
	h := newHarness(t, nil, func(c *Config) { c.Limits.UnauthenticatedRPS = 1 }, nil)
	for _, tc := range []struct {
		target string
		hdr    http.Header
	}{
		{"/fhir/Patient/p1", good},
		{"/fhir/Patient/%2e%2e/x", good},
		{"/fhir/Patient/p1", nil},
		{"/fhir/Patient/p1", nil},
		{"/fhir/Patient/p1", nil},
	} {
		resp := h.do(t, "GET", tc.target, tc.hdr, "")
		readBody(t, resp)
	}
	assert.Eventually(t, func() bool { return h.proxy.uncommitted.Load() == 0 }, 5*time.Second, time.Millisecond)
}
