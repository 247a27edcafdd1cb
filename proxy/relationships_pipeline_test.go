package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/policy"
)

// relPolicy allows a clinical resource when the user is on the care team
// of, or the GP of, or holds a break-the-glass grant for, every patient it
// names; it mirrors the default policy's use of input.relationship.
func relPolicy(in *chartguard.Input) (chartguard.Decision, error) {
	for _, p := range in.Resource.Patients {
		if hasGrant(in.Session.BreakGlass, p, in.Request.Time) {
			continue
		}
		rel, ok := in.Relationship[p]
		if !ok || !(rel.CareTeam || rel.PCP) {
			return chartguard.Decision{Reasons: []string{"not on the patient's care team"}}, nil
		}
	}
	return chartguard.Decision{Allow: true}, nil
}

// clinicianAuth authenticates every request as physician
// Practitioner/pr1, with a break-the-glass grant for the patient in the
// X-Test-Grant header, if any.
type clinicianAuth struct{}

func (clinicianAuth) Authenticate(_ context.Context, r *http.Request) (*chartguard.Principal, error) {
	p := &chartguard.Principal{
		Identity: chartguard.Identity{Issuer: "https://idp", Subject: "u1", Roles: []string{"physician"},
			FHIRUser: "Practitioner/pr1"},
		Token: chartguard.Token{Kind: chartguard.TokenBearer, ClientID: "app"},
	}
	if g := r.Header.Get("X-Test-Grant"); g != "" {
		p.Session.BreakGlass = []chartguard.BTGGrant{{Grant: "g1", Patient: g, Reason: "ETREAT",
			ExpiresAt: time.Now().Add(time.Hour)}}
	}
	return p, nil
}

type relHarness struct {
	proxy  *Proxy
	server *httptest.Server
	audit  *memAudit
	emr    *fakeEMR
	policy atomic.Int64 // policy evaluations
}

// newRelHarness runs the real pipeline with policy.relationships.source
// fhir in front of emr.
func newRelHarness(t *testing.T, emr *fakeEMR, timeout time.Duration) *relHarness {
	t.Helper()
	h := &relHarness{audit: &memAudit{}, emr: emr}
	up := httptest.NewServer(emr)
	t.Cleanup(up.Close)
	cfg := defaults()
	cfg.PublicURL, cfg.Upstream.URL = "https://emr.example.org", up.URL
	cfg.Audit.Dir = t.TempDir()
	cfg.Audit.SigningKeyFile = "unused.key" // h.audit is a fake: never read
	cfg.Admin.Listen = ""
	cfg.OIDC.Issuer, cfg.OIDC.ClientID = "https://idp.example.org", "chartguard"
	cfg.Policy.Relationships.Source = policy.RelationshipsFHIR
	cfg.Policy.Relationships.Timeout = timeout
	require.NoError(t, cfg.validate())
	pol := decideFunc(func(in *chartguard.Input) (chartguard.Decision, error) {
		h.policy.Add(1)
		return relPolicy(in)
	})
	p, err := assemble(context.Background(), &cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry(),
		clinicianAuth{}, pol, h.audit)
	require.NoError(t, err)
	require.NotNil(t, p.rels, "source fhir builds the lookup")
	h.proxy = p
	h.server = httptest.NewServer(p)
	t.Cleanup(func() { h.server.Close(); _ = p.Close() })
	return h
}

func (h *relHarness) get(t *testing.T, path string, grantFor ...string) (int, string, *chartguard.Event) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.server.URL+path, nil)
	require.NoError(t, err)
	for _, g := range grantFor {
		req.Header.Set("X-Test-Grant", g)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body := readBody(t, resp)
	events, _ := h.audit.all()
	require.NotEmpty(t, events)
	return resp.StatusCode, body, events[len(events)-1]
}

func TestPipelineRelationships(t *testing.T) {
	t.Parallel()
	obs := func(id, patient string) string {
		return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"text":"hr"},"subject":{"reference":"Patient/%s"}}`, id, patient)
	}
	t.Run("care team allows a read decided in the response phase", func(t *testing.T) {
		t.Parallel()
		emr := newFakeEMR()
		emr.careTeams = []string{ctJSON("active", "p1", "Practitioner/pr1", "")}
		emr.other["/fhir/Observation/o1"] = obs("o1", "p1")
		h := newRelHarness(t, emr, time.Second)
		status, body, ev := h.get(t, "/fhir/Observation/o1")
		assert.Equal(t, http.StatusOK, status, body)
		assert.Equal(t, chartguard.OutcomeAllowed, ev.Outcome)
		assert.Equal(t, 1, emr.count("CareTeam"))
	})
	t.Run("pcp allows a search that names the patient", func(t *testing.T) {
		t.Parallel()
		emr := newFakeEMR()
		emr.patients["p1"] = patientJSON("p1", "Practitioner/pr1")
		emr.other["/fhir/Observation"] = `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":` + obs("o1", "p1") + `}]}`
		h := newRelHarness(t, emr, time.Second)
		status, body, _ := h.get(t, "/fhir/Observation?patient=p1")
		assert.Equal(t, http.StatusOK, status, body)
		assert.Contains(t, body, `"o1"`)
		assert.Equal(t, 1, emr.count("Patient"), "request and response phase share one lookup")
	})
	t.Run("no relationship is the policy's denial", func(t *testing.T) {
		t.Parallel()
		emr := newFakeEMR()
		emr.other["/fhir/Observation/o1"] = obs("o1", "p1")
		h := newRelHarness(t, emr, time.Second)
		status, body, ev := h.get(t, "/fhir/Observation/o1")
		assert.Equal(t, http.StatusForbidden, status)
		assert.Contains(t, body, "not on the patient's care team")
		assert.Equal(t, []string{"not on the patient's care team"}, ev.Decision.Reasons)
	})
	t.Run("timeout denies without the policy", func(t *testing.T) {
		t.Parallel()
		emr := newFakeEMR()
		emr.block = make(chan struct{})
		h := newRelHarness(t, emr, 50*time.Millisecond)
		status, body, ev := h.get(t, "/fhir/Observation?patient=p1")
		assert.Equal(t, http.StatusForbidden, status)
		assert.Contains(t, body, reasonRelationship)
		assert.Equal(t, chartguard.OutcomeDenied, ev.Outcome)
		assert.Equal(t, []string{reasonRelationship}, ev.Decision.Reasons)
		assert.NotEmpty(t, ev.Decision.ID)
		assert.Equal(t, "rev-test", ev.Decision.Revision)
		assert.Equal(t, int64(0), h.policy.Load(), "the policy is not asked")
		assert.Equal(t, 1.0, counterValue(t, h.proxy.rels.lookups.WithLabelValues("timeout")))
	})
	t.Run("a break-the-glass grant stands in when the EMR cannot answer", func(t *testing.T) {
		t.Parallel()
		emr := newFakeEMR()
		emr.fail["CareTeam"] = 503
		emr.other["/fhir/Observation"] = `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":` +
			obs("o1", "p1") + `},{"resource":` + obs("o2", "p2") + `}]}`
		h := newRelHarness(t, emr, time.Second)
		status, body, ev := h.get(t, "/fhir/Observation?patient=p1", "p1")
		assert.Equal(t, http.StatusOK, status, body)
		assert.Contains(t, body, `"o1"`, "the grant's patient: the policy decided on the grant")
		assert.NotContains(t, body, `"o2"`, "no grant: withheld")
		assert.Equal(t, []string{reasonRelationship}, ev.Decision.Reasons)
		assert.Positive(t, h.policy.Load())
	})
	t.Run("EMR error withholds that patient's entries and keeps the rest", func(t *testing.T) {
		t.Parallel()
		emr := newFakeEMR()
		emr.careTeams = []string{ctJSON("active", "p1", "Practitioner/pr1", ""), ctJSON("active", "p2", "Practitioner/pr1", "")}
		emr.fail["Patient/p1"] = 500
		emr.other["/fhir/Observation"] = `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":` +
			obs("o1", "p1") + `},{"resource":` + obs("o2", "p2") + `}]}`
		h := newRelHarness(t, emr, time.Second)
		status, body, ev := h.get(t, "/fhir/Observation?code=hr")
		assert.Equal(t, http.StatusOK, status)
		assert.NotContains(t, body, `"o1"`, "a lookup that failed withholds")
		assert.Contains(t, body, `"o2"`)
		assert.Contains(t, body, "suppressed")
		assert.Equal(t, []string{reasonRelationship}, ev.Decision.Reasons)
		assert.Equal(t, []string{"p2"}, ev.Resource.Patients, "the audit lists what was delivered")
		assert.Equal(t, 1.0, counterValue(t, h.proxy.rels.lookups.WithLabelValues("error")))
		assert.Equal(t, 1.0, counterValue(t, h.proxy.rels.lookups.WithLabelValues("miss")))
	})
	t.Run("a large search is looked up in parallel and capped", func(t *testing.T) {
		t.Parallel()
		emr := newFakeEMR()
		var entries []string
		for i := range relMaxLookups + 6 {
			p := fmt.Sprintf("p%03d", i)
			emr.careTeams = append(emr.careTeams, ctJSON("active", p, "Practitioner/pr1", ""))
			entries = append(entries, `{"resource":`+obs("o"+p, p)+`}`)
		}
		emr.other["/fhir/Observation"] = `{"resourceType":"Bundle","type":"searchset","entry":[` + strings.Join(entries, ",") + `]}`
		h := newRelHarness(t, emr, 5*time.Second)
		status, body, ev := h.get(t, "/fhir/Observation?code=hr")
		assert.Equal(t, http.StatusOK, status)
		assert.Contains(t, body, `"op000"`)
		assert.Contains(t, body, fmt.Sprintf(`"op%03d"`, relMaxLookups-1))
		assert.NotContains(t, body, fmt.Sprintf(`"op%03d"`, relMaxLookups), "beyond the cap: withheld")
		assert.Equal(t, relMaxLookups, emr.count("CareTeam"))
		assert.Equal(t, []string{reasonRelationship}, ev.Decision.Reasons)
		assert.Equal(t, 6.0, counterValue(t, h.proxy.rels.lookups.WithLabelValues("limit")))

		// Asked again, the first answers are cached: the rest get theirs.
		status, body, _ = h.get(t, "/fhir/Observation?code=hr")
		assert.Equal(t, http.StatusOK, status)
		assert.Contains(t, body, fmt.Sprintf(`"op%03d"`, relMaxLookups+5))
		assert.Equal(t, relMaxLookups+6, emr.count("CareTeam"))
	})
}

func TestRelationshipsOffByDefault(t *testing.T) {
	t.Parallel()
	cfg := defaults()
	assert.Equal(t, policy.RelationshipsData, cfg.Policy.Relationships.Source)
	assert.Equal(t, 5*time.Minute, cfg.Policy.Relationships.TTL)
	assert.Equal(t, 200*time.Millisecond, cfg.Policy.Relationships.Timeout)
	h := newHarness(t, nil, nil, nil)
	assert.Nil(t, h.proxy.rels, "source data looks nothing up")
}

func TestRelationshipsConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml string
		want       []string // substrings of the error; none = valid
	}{
		{"fhir", "policy: {relationships: {source: fhir, ttl: 1m, timeout: 300ms, encounter_lookback: 336h}}\n", nil},
		{"bad source", "policy: {relationships: {source: ldap}}\n", []string{"policy.relationships.source", "data or fhir"}},
		{"negative ttl", "policy: {relationships: {ttl: -1s}}\n", []string{"policy.relationships.ttl"}},
		{"huge timeout", "policy: {relationships: {timeout: 2m}}\n", []string{"policy.relationships.timeout"}},
		{"unknown key", "policy: {relationships: {sauce: fhir}}\n", []string{"policy.relationships.sauce"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ParseConfig([]byte(minimalYAML+tc.yaml), noEnv)
			if tc.want == nil {
				require.NoError(t, err)
				assert.Equal(t, policy.RelationshipsFHIR, cfg.Policy.Relationships.Source)
				assert.Equal(t, 336*time.Hour, cfg.Policy.Relationships.EncounterLookback)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
