package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/audit"
	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/examples/fhir-demo/devissuer"
	"github.com/chartguard/chartguard/examples/fhir-demo/fhirserver"
	"github.com/chartguard/chartguard/proxy"
)

// repoRoot is the module root, found from this file.
func repoRoot(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Dir(filepath.Dir(file))
}

// env is ChartGuard running for real — config parsed from YAML, started with
// proxy.New and Serve on loopback listeners — in front of an upstream, with
// the development token issuer as its OIDC provider.
type env struct {
	URL      string // ChartGuard
	AdminURL string
	AdminTok string
	AuditDir string
	Issuer   *devissuer.Issuer
	proxy    *proxy.Proxy
	cancel   context.CancelFunc
	done     chan error

	logs *lockedBuffer // ChartGuard's operational log (slog JSON)

	mu   sync.Mutex
	seen []*http.Request // what the demo upstream received (headers cloned)
}

// lockedBuffer collects log output from concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type envOptions struct {
	upstreamURL string              // "" = start the demo FHIR server
	extraYAML   string              // appended to the config
	mutate      func(*proxy.Config) // after parsing, before New
	// wrapUpstream wraps the demo FHIR server's handler (fault injection).
	wrapUpstream func(http.Handler) http.Handler
	// policyDir replaces configs/policy (e.g. a copy whose data.json names
	// care teams for patients created at test time).
	policyDir string
}

// startIssuer runs the development issuer on loopback.
func startIssuer(t testing.TB) (*devissuer.Issuer, string) {
	ln, err := devissuer.ListenLoopback("127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String()
	is, err := devissuer.New(devissuer.Options{Issuer: url, Audience: "chartguard"})
	require.NoError(t, err)
	srv := &http.Server{Handler: is, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return is, url
}

func startEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{done: make(chan error, 1)}
	upstream := o.upstreamURL
	if upstream == "" {
		fhir := fhirserver.New(fhirserver.Options{OnRequest: func(r *http.Request) {
			c := r.Clone(context.Background())
			e.mu.Lock()
			e.seen = append(e.seen, c)
			e.mu.Unlock()
		}})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		var handler http.Handler = fhir
		if o.wrapUpstream != nil {
			handler = o.wrapUpstream(fhir)
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		upstream = "http://" + ln.Addr().String()
	}
	var issuerURL string
	e.Issuer, issuerURL = startIssuer(t)

	dir := t.TempDir()
	e.AuditDir = filepath.Join(dir, "audit")
	e.AdminTok = "admin-token-0123456789abcdef"
	tokFile := filepath.Join(dir, "admin-token")
	require.NoError(t, os.WriteFile(tokFile, []byte(e.AdminTok+"\n"), 0o600))
	keyFile := filepath.Join(dir, "audit.key")
	skey, _, err := audit.GenerateKey("emr.example.org/audit/e2e-1")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, []byte(skey+"\n"), 0o600))
	yaml := fmt.Sprintf(`
node_id: e2e-1
listen: "127.0.0.1:0"
public_url: "https://emr.example.org"
admin: {listen: "127.0.0.1:0", token_file: %q}
upstream: {url: %q, fhir_base: /fhir, timeout: 5s}
oidc:
  issuer: %q
  client_id: chartguard
  audience: chartguard
  role_map:
    chartguard-physician: physician
    chartguard-nurse: nurse
    chartguard-registration: registration
    chartguard-billing: billing
    chartguard-lab: lab
    chartguard-pharmacist: pharmacist
    chartguard-privacy-officer: privacy-officer
    chartguard-it-admin: it-admin
    chartguard-patient: patient
    chartguard-him: him
# Generous for -race on a loaded 2-core CI machine; the default is 50ms.
policy: {dir: %q, eval_timeout: 2s}
audit: {dir: %q, durable: true, fail_closed: true, signing_key_file: %q}
%s`, tokFile, upstream, issuerURL, filepath.Join(repoRoot(t), "configs", "policy"), e.AuditDir, keyFile, o.extraYAML)
	cfg, err := proxy.ParseConfig([]byte(yaml), os.LookupEnv)
	require.NoError(t, err)
	if o.policyDir != "" {
		cfg.Policy.Dir = o.policyDir
	}
	if o.mutate != nil {
		o.mutate(cfg)
	}
	e.logs = &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.proxy, err = proxy.New(context.Background(), cfg, logger)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e.URL, e.AdminURL = "http://"+ln.Addr().String(), "http://"+aln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- e.proxy.Serve(ctx, ln, aln) }()
	t.Cleanup(e.stop)
	return e
}

// stop shuts ChartGuard down and closes its audit log.
func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	<-e.done
	_ = e.proxy.Close()
	e.cancel = nil
}

// token mints an access token for role.
func (e *env) token(t testing.TB, role, sub string, opts ...func(*devissuer.TokenRequest)) string {
	t.Helper()
	req := devissuer.TokenRequest{Role: role, Subject: sub}
	for _, o := range opts {
		o(&req)
	}
	if req.FHIRUser == "" {
		// Clinicians are someone: the default policy lets them see only
		// their care teams' patients. pr1 is p1's GP; pr9, a nurse, is on
		// p2's team (demo EMR fixed points and configs/policy care_teams).
		req.FHIRUser = map[string]string{"physician": "Practitioner/pr1", "nurse": "Practitioner/pr9"}[role]
	}
	tok, err := e.Issuer.Token(req)
	require.NoError(t, err)
	return tok
}

var client = &http.Client{Timeout: 15 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// call makes one request through ChartGuard and returns status and body.
func (e *env) call(t testing.TB, method, path, token string, body io.Reader, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, e.URL+path, body)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

func (e *env) upstreamSaw() []*http.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*http.Request(nil), e.seen...)
}

// events reads every event from the audit segment files, in seq order.
func (e *env) events(t testing.TB) []chartguard.Event {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(e.AuditDir, "*.log"))
	require.NoError(t, err)
	sort.Strings(files)
	var out []chartguard.Event
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		sc := bufio.NewScanner(bytes.NewReader(audit.SegmentData(b)))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev chartguard.Event
			require.NoError(t, json.Unmarshal(sc.Bytes(), &ev), sc.Text())
			out = append(out, ev)
		}
		require.NoError(t, sc.Err())
	}
	return out
}

// metric reads one sample from the admin /metrics endpoint.
func (e *env) metric(t testing.TB, name string) float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", e.AdminURL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e.AdminTok)
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var total float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			continue
		}
		series := fields[0]
		if series == name || strings.HasPrefix(series, name+"{") {
			var v float64
			_, err := fmt.Sscan(fields[1], &v)
			require.NoError(t, err)
			total += v
			found = true
		}
	}
	require.True(t, found, "metric %s not exported", name)
	return total
}
