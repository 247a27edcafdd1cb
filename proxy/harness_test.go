package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/policy"
)

// memAudit records committed events and can be told to fail.
type memAudit struct {
	mu       sync.Mutex
	events   []*chartguard.Event
	deferred []*chartguard.Event
	fail     bool
}

func (m *memAudit) Commit(_ context.Context, ev *chartguard.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("audit: log unavailable: injected")
	}
	m.events = append(m.events, ev)
	return nil
}

func (m *memAudit) Defer(ev *chartguard.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deferred = append(m.deferred, ev)
}

func (m *memAudit) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("audit: log unavailable: injected")
	}
	return nil
}

func (m *memAudit) Close() error { return nil }

func (m *memAudit) all() (committed, deferred []*chartguard.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*chartguard.Event(nil), m.events...), append([]*chartguard.Event(nil), m.deferred...)
}

// decideFunc is a policy fake.
type decideFunc func(in *chartguard.Input) (chartguard.Decision, error)

func (f decideFunc) DecideWith(_ context.Context, in *chartguard.Input, _ *policy.Memo) (chartguard.Decision, error) {
	d, err := f(in)
	d.ID, d.Revision = "dec-1", "rev-test"
	return d, err
}

func (decideFunc) Revision() string { return "rev-test" }

func allowAll(*chartguard.Input) (chartguard.Decision, error) {
	return chartguard.Decision{Allow: true, Reasons: []string{}}, nil
}

// authFunc authenticates "Bearer good" as a physician and nothing else.
type authFunc struct{}

var errBadToken = errors.New("authn: invalid credentials")

func (authFunc) Authenticate(_ context.Context, r *http.Request) (*chartguard.Principal, error) {
	switch r.Header.Get("Authorization") {
	case "Bearer good":
		return &chartguard.Principal{
			Identity: chartguard.Identity{Issuer: "https://idp", Subject: "u1", Roles: []string{"physician"}},
			Token:    chartguard.Token{Kind: chartguard.TokenBearer, ClientID: "app"},
		}, nil
	case "":
		return nil, errors.New("authn: no credentials")
	}
	return nil, errBadToken
}

// upstreamRecord is what the fake EMR saw.
type upstreamRecord struct {
	RequestURI string
	Method     string
	Header     http.Header
	Body       string
}

type harness struct {
	proxy    *Proxy
	server   *httptest.Server
	audit    *memAudit
	mu       sync.Mutex
	received []upstreamRecord
	upstream *httptest.Server
}

func (h *harness) seen() []upstreamRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]upstreamRecord(nil), h.received...)
}

// newHarness runs the real pipeline against an httptest upstream that
// records each request, with fake authn, policy and audit.
func newHarness(t testing.TB, pol decideFunc, mutate func(*Config), upstream http.HandlerFunc) *harness {
	t.Helper()
	if pol == nil {
		pol = allowAll
	}
	return newHarnessDecider(t, pol, mutate, upstream)
}

// newHarnessDecider is newHarness with any policy engine.
func newHarnessDecider(t testing.TB, pol decider, mutate func(*Config), upstream http.HandlerFunc) *harness {
	t.Helper()
	h := &harness{audit: &memAudit{}}
	if upstream == nil {
		upstream = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/fhir+json")
			w.Header().Add("Set-Cookie", "JSESSIONID=emr; Path=/")
			w.Header().Add("Set-Cookie", "__Host-chartguard_session=forged; Path=/; Secure")
			w.Header().Set("Access-Control-Allow-Origin", "*")
			_, _ = w.Write([]byte(`{"resourceType":"Patient","id":"p1"}`))
		}
	}
	h.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		h.mu.Lock()
		h.received = append(h.received, upstreamRecord{r.RequestURI, r.Method, r.Header.Clone(), string(body)})
		h.mu.Unlock()
		upstream(w, r)
	}))
	t.Cleanup(h.upstream.Close)
	cfg := defaults()
	cfg.PublicURL, cfg.Upstream.URL = "https://emr.example.org", h.upstream.URL
	cfg.Audit.Dir = t.TempDir()
	cfg.Audit.SigningKeyFile = "unused.key" // h.audit is a fake: never read
	cfg.Admin.Listen = ""
	cfg.OIDC.Issuer = "https://idp.example.org"
	cfg.OIDC.ClientID = "chartguard"
	cfg.Routes = []RouteConfig{{Path: "/chart/{patient}/notes", Methods: []string{"GET"}, Resource: "DocumentReference", Action: "read"}}
	if mutate != nil {
		mutate(&cfg)
	}
	require.NoError(t, cfg.validate())
	logger := slog.New(slog.DiscardHandler)
	p, err := assemble(context.Background(), &cfg, logger, prometheus.NewRegistry(), authFunc{}, pol, h.audit)
	require.NoError(t, err)
	h.proxy = p
	h.server = httptest.NewServer(p)
	t.Cleanup(func() { h.server.Close(); _ = p.Close() })
	return h
}

// do sends a request with a raw target, byte for byte, over a real
// connection: no client library gets to clean it first.
func (h *harness) do(t testing.TB, method, target string, hdr http.Header, body string) *http.Response {
	t.Helper()
	u, err := url.Parse(h.server.URL)
	require.NoError(t, err)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, u.Host)
	for k, vs := range hdr {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	_, err = io.WriteString(conn, b.String())
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	require.NoError(t, err)
	return resp
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
