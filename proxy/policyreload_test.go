package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/policy"
)

const adminToken = "correct-horse-battery-staple"

func regoPolicy(allow bool, version string) string {
	a := "false"
	if allow {
		a = "true"
	}
	return "package chartguard\n\n# version " + version + "\n\ndecision := {\"allow\": " + a + ", \"reasons\": [\"v" + version + "\"]}\n"
}

func writePolicy(t *testing.T, dir, body string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "p.rego"), []byte(body), 0o644))
}

// withManager gives the harness's proxy a reloadable policy from dir, wired
// as New wires it.
func withManager(t *testing.T, h *harness, dir string) *policy.Manager {
	t.Helper()
	var hp atomic.Pointer[Proxy]
	hp.Store(h.proxy)
	m, err := policy.NewManager(t.Context(), policy.Config{Dir: dir, EvalTimeout: 10 * time.Second}, nil,
		func(ctx context.Context, r policy.Reload) {
			if p := hp.Load(); p != nil {
				p.policyReloaded(ctx, r)
			}
		})
	require.NoError(t, err)
	h.proxy.policies.Store(m)
	return m
}

type reloadAnswer struct {
	Outcome  string `json:"outcome"`
	Revision string `json:"revision"`
	Previous string `json:"previous"`
	Error    string `json:"error"`
}

func postReload(t *testing.T, admin, token string) (int, reloadAnswer) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, admin+"/admin/policy/reload", nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var a reloadAnswer
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusMethodNotAllowed {
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&a))
	}
	return resp.StatusCode, a
}

// adminEvents are the audit events of policy reloads.
func adminEvents(h *harness) []*chartguard.Event {
	var out []*chartguard.Event
	committed, _ := h.audit.all()
	for _, ev := range committed {
		if ev.Action == chartguard.ActionAdmin {
			out = append(out, ev)
		}
	}
	return out
}

func TestPolicyReloadEndpoint(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, regoPolicy(true, "1"))
	h := newHarness(t, nil, func(c *Config) { c.adminToken = adminToken }, nil)
	m := withManager(t, h, dir)
	rev1 := m.Revision()
	admin := httptest.NewServer(h.proxy.AdminHandler())
	t.Cleanup(admin.Close)
	reloads := func(outcome string) float64 {
		return testutil.ToFloat64(h.proxy.polMetrics.reloads.WithLabelValues(policy.TriggerAdmin, outcome))
	}
	revisionInfo := func(rev string) float64 {
		return testutil.ToFloat64(h.proxy.polMetrics.revisionInfo.WithLabelValues(rev))
	}

	code, _ := postReload(t, admin.URL, "")
	assert.Equal(t, http.StatusUnauthorized, code, "the admin token is required")
	code, _ = postReload(t, admin.URL, adminToken+"x")
	assert.Equal(t, http.StatusUnauthorized, code)
	assert.Equal(t, 2.0, testutil.ToFloat64(h.proxy.metrics.adminRefused), "chartguard_admin_unauthorized_total")
	resp, err := http.Get(admin.URL + "/admin/policy/reload")
	require.NoError(t, err)
	resp.Body.Close()
	assert.NotEqual(t, http.StatusOK, resp.StatusCode, "GET does not reload")
	assert.Empty(t, adminEvents(h), "nothing reloaded yet")

	tests := []struct {
		name     string
		policy   string // written before the reload; empty: no change
		status   int
		outcome  string
		audit    string // event outcome
		errText  string
		newRev   bool
		reqAllow bool // a request after the reload is allowed
	}{
		{name: "unchanged", status: 200, outcome: policy.OutcomeUnchanged, audit: chartguard.OutcomeAllowed, reqAllow: true},
		{name: "rego syntax error", policy: "package chartguard\n\ndecision := {\"allow\": \n", status: 422,
			outcome: policy.OutcomeRefused, audit: chartguard.OutcomeError, errText: "p.rego:", reqAllow: true},
		{name: "decision is a string", policy: "package chartguard\n\ndecision := concat(\"\", [\"al\", \"low\"])\n", status: 200,
			outcome: policy.OutcomeLoaded, audit: chartguard.OutcomeAllowed, newRev: true, reqAllow: false},
		{name: "good policy", policy: regoPolicy(true, "2"), status: 200, outcome: policy.OutcomeLoaded,
			audit: chartguard.OutcomeAllowed, newRev: true, reqAllow: true},
	}
	serving := rev1
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.policy != "" {
				writePolicy(t, dir, tc.policy)
			}
			before := reloads(tc.outcome)
			nEvents := len(adminEvents(h))

			code, a := postReload(t, admin.URL, adminToken)

			assert.Equal(t, tc.status, code)
			assert.Equal(t, tc.outcome, a.Outcome)
			assert.Equal(t, serving, a.Previous)
			if tc.newRev {
				assert.NotEqual(t, serving, a.Revision)
				assert.Equal(t, 0.0, revisionInfo(serving), "the old revision is no longer reported")
				serving = a.Revision
			}
			assert.Equal(t, serving, a.Revision)
			assert.Equal(t, 1.0, revisionInfo(serving), "chartguard_policy_revision_info")
			assert.Equal(t, before+1, reloads(tc.outcome), "chartguard_policy_reloads_total")
			if tc.errText != "" {
				assert.Contains(t, a.Error, tc.errText)
			} else {
				assert.Empty(t, a.Error)
			}

			events := adminEvents(h)
			require.Len(t, events, nEvents+1, "each admin reload is audited")
			ev := events[len(events)-1]
			assert.Equal(t, tc.audit, ev.Outcome)
			assert.Equal(t, "/admin/policy/reload", ev.Request.Path)
			assert.Equal(t, http.MethodPost, ev.Request.Method)
			assert.Equal(t, tc.status, ev.Request.Status)
			require.NotNil(t, ev.Decision)
			assert.Equal(t, serving, ev.Decision.Revision)
			assert.Contains(t, ev.Decision.Reasons[0], "policy reload (admin, dir): "+tc.outcome)
			if tc.errText != "" {
				assert.Contains(t, strings.Join(ev.Decision.Reasons, " "), tc.errText)
			}

			// Requests are decided by what serves now.
			resp := h.do(t, "GET", "/fhir/Patient/p1", good, "")
			resp.Body.Close()
			if tc.reqAllow {
				assert.Equal(t, 200, resp.StatusCode)
			} else {
				assert.Equal(t, 403, resp.StatusCode)
			}
			committed, _ := h.audit.all()
			last := committed[len(committed)-1]
			require.NotNil(t, last.Decision)
			assert.Equal(t, serving, last.Decision.Revision, "decision.revision of the request")
		})
	}
	assert.Positive(t, testutil.ToFloat64(h.proxy.polMetrics.allowed))
	assert.Positive(t, testutil.ToFloat64(h.proxy.polMetrics.failed), "the string decision failed")
}

// TestReloadDuringRequestKeepsRevision: a request held in the EMR while a
// reload lands finishes on the revision it started with, its response
// check included, and is audited with it.
func TestReloadDuringRequestKeepsRevision(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, regoPolicy(true, "old"))
	arrived, release := make(chan struct{}), make(chan struct{})
	h := newHarness(t, nil, func(c *Config) { c.adminToken = adminToken }, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fhir/Patient/held" {
			close(arrived)
			<-release
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = w.Write([]byte(`{"resourceType":"Patient","id":"held"}`))
	})
	m := withManager(t, h, dir)
	oldRev := m.Revision()
	admin := httptest.NewServer(h.proxy.AdminHandler())
	t.Cleanup(admin.Close)

	type result struct {
		status int
		body   string
	}
	done := make(chan result, 1)
	go func() {
		resp := h.do(t, "GET", "/fhir/Patient/held", good, "")
		done <- result{resp.StatusCode, readBody(t, resp)}
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the EMR")
	}

	// The new policy denies everything.
	writePolicy(t, dir, regoPolicy(false, "new"))
	code, a := postReload(t, admin.URL, adminToken)
	require.Equal(t, 200, code)
	require.Equal(t, policy.OutcomeLoaded, a.Outcome)
	newRev := a.Revision
	require.NotEqual(t, oldRev, newRev)
	close(release)

	var res result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the held request never finished")
	}
	assert.Equal(t, 200, res.status, "the response check ran on the old revision too")
	assert.Contains(t, res.body, `"id":"held"`)

	committed, _ := h.audit.all()
	var held *chartguard.Event
	for _, ev := range committed {
		if ev.Action != chartguard.ActionAdmin && strings.HasPrefix(ev.Request.Path, "/fhir/Patient/held") {
			held = ev
		}
	}
	require.NotNil(t, held)
	require.NotNil(t, held.Decision)
	assert.Equal(t, oldRev, held.Decision.Revision, "audited with the revision it started with")
	assert.Equal(t, chartguard.OutcomeAllowed, held.Outcome)

	resp := h.do(t, "GET", "/fhir/Patient/p1", good, "")
	resp.Body.Close()
	assert.Equal(t, 403, resp.StatusCode, "the next request is decided by the new revision")
	committed, _ = h.audit.all()
	assert.Equal(t, newRev, committed[len(committed)-1].Decision.Revision)
}

func TestPolicyBundleConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(minimalYAML+`
policy: {bundle: {url: "https://bundles.example.org/cg/bundle.tar.gz", poll: {min: 10s, max: 20s}, verification_key_file: /etc/cg/bundle.pub}}
`), noEnv)
	require.NoError(t, err, "policy.bundle is supported")
	assert.Equal(t, policy.BundleConfig{URL: "https://bundles.example.org/cg/bundle.tar.gz", VerificationKeyFile: "/etc/cg/bundle.pub",
		Poll: policy.BundlePollConfig{Min: 10 * time.Second, Max: 20 * time.Second}}, cfg.Policy.Bundle)

	_, err = ParseConfig([]byte(minimalYAML+`
policy: {bundle: {url: "https://bundles.example.org/b.tar.gz", poll: {min: 30s, max: 10s}, verification_key_file: /etc/cg/bundle.pub}}
`), noEnv)
	require.ErrorContains(t, err, "policy.bundle.poll.max")

	_, err = ParseConfig([]byte(minimalYAML+`
policy: {bundle: {url: "https://bundles.example.org/b.tar.gz"}}
`), noEnv)
	require.ErrorContains(t, err, "policy.bundle.verification_key_file: required", "an unsigned policy source is refused")

	cfg, err = ParseConfig([]byte(minimalYAML), noEnv)
	require.NoError(t, err)
	assert.Empty(t, cfg.Policy.Bundle.URL, "no bundle by default: the policy directory is the source")
}
