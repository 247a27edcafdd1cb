package policy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bundleServer serves one bundle at /bundles/cg.tar.gz with an ETag, and
// answers 304 to a matching If-None-Match.
type bundleServer struct {
	mu       sync.Mutex
	body     []byte
	etag     string
	requests int
	*httptest.Server
}

func newBundleServer(t *testing.T) *bundleServer {
	s := &bundleServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests++
		if r.URL.Path != "/bundles/cg.tar.gz" || s.body == nil {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("If-None-Match") == s.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", s.etag)
		_, _ = w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *bundleServer) serve(body []byte, etag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.etag = body, etag
}

func (s *bundleServer) url() string { return s.URL + "/bundles/cg.tar.gz" }

// makeBundle builds a bundle .tar.gz with the given revision and modules,
// signed with key unless key is nil.
func makeBundle(t *testing.T, revision string, modules map[string]string, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	b := bundle.Bundle{Manifest: bundle.Manifest{Revision: revision}, Data: map[string]any{}}
	b.Manifest.Init()
	for name, body := range modules {
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: "/" + name, Path: "/" + name, Raw: []byte(body)})
	}
	if key != nil {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		require.NoError(t, err)
		priv := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		require.NoError(t, b.GenerateSignature(bundle.NewSigningConfig(priv, "ES256", ""), "any-kid", true))
	}
	var buf bytes.Buffer
	require.NoError(t, bundle.NewWriter(&buf).UseModulePath(true).Write(b))
	return buf.Bytes()
}

func newKey(t *testing.T) (*ecdsa.PrivateKey, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "bundle.pub")
	require.NoError(t, os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600))
	return k, file
}

func TestManagerBundle(t *testing.T) {
	key, pubFile := newKey(t)
	otherKey, _ := newKey(t)
	srv := newBundleServer(t)
	srv.serve(makeBundle(t, "rev-1", map[string]string{"p.rego": allowPolicy("1"), "p_test.rego": passingTest}, key), `"e1"`)

	var rec reloads
	var logs bytes.Buffer
	cfg := Config{Dir: "/nonexistent/dir/is/not/read", EvalTimeout: testTimeout,
		Bundle: BundleConfig{URL: srv.url(), VerificationKeyFile: pubFile}}
	m, err := NewManager(t.Context(), cfg, slog.New(slog.NewJSONHandler(&logs, nil)), rec.notify)
	require.NoError(t, err)
	assert.Equal(t, "rev-1", m.Revision(), "the revision is the bundle's")
	in := physicianRead()
	d, err := m.Current().Decide(t.Context(), &in)
	require.NoError(t, err)
	assert.True(t, d.Allow)
	assert.Equal(t, "rev-1", d.Revision)

	rev2 := map[string]string{"p.rego": allowPolicy("2"), "p_test.rego": passingTest}
	tests := []struct {
		name     string
		body     []byte
		etag     string
		outcome  string
		revision string
		errText  string
	}{
		{name: "not modified (ETag)", outcome: OutcomeUnchanged, revision: "rev-1"},
		{name: "bad signature", body: makeBundle(t, "rev-evil", map[string]string{"p.rego": allowPolicy("evil")}, otherKey),
			etag: `"e2"`, outcome: OutcomeRefused, revision: "rev-1", errText: "invalid ECDSA signature"},
		{name: "unsigned", body: makeBundle(t, "rev-unsigned", map[string]string{"p.rego": allowPolicy("u")}, nil),
			etag: `"e3"`, outcome: OutcomeRefused, revision: "rev-1", errText: "signature"},
		{name: "signed but fails its tests", body: makeBundle(t, "rev-bad", map[string]string{
			"p.rego": "package chartguard\n\ndecision := {\"allow\": false}\n", "p_test.rego": passingTest}, key),
			etag: `"e4"`, outcome: OutcomeRefused, revision: "rev-1", errText: "test_allows: fail"},
		{name: "the refused bundle, asked again, is refused again (not 304 unchanged)",
			outcome: OutcomeRefused, revision: "rev-1", errText: "test_allows: fail"},
		{name: "signed, Rego syntax error", body: makeBundle(t, "rev-syntax", map[string]string{"p.rego": "package chartguard\n\ndecision := {\n"}, key),
			etag: `"e5"`, outcome: OutcomeRefused, revision: "rev-1", errText: "p.rego:"},
		{name: "signed, a parse error quoting data", body: makeBundle(t, "rev-syntax2",
			map[string]string{"p.rego": "package chartguard\n\nvips := {\"Patient-MRN-4711\",\n"}, key),
			etag: `"e5b"`, outcome: OutcomeRefused, revision: "rev-1", errText: "Patient-MRN-4711"},
		{name: "good signed bundle", body: makeBundle(t, "rev-2", rev2, key),
			etag: `"e6"`, outcome: OutcomeLoaded, revision: "rev-2"},
		{name: "the same bundle built again (new ETag)", body: makeBundle(t, "rev-2", rev2, key),
			etag: `"e7"`, outcome: OutcomeUnchanged, revision: "rev-2"},
		// One revision must name one policy, in the audit log above all.
		{name: "signed, serving revision reused for other content", body: makeBundle(t, "rev-2",
			map[string]string{"p.rego": "package chartguard\n\ndecision := {\"allow\": false, \"reasons\": [\"x\"]}\n"}, key),
			etag: `"e8"`, outcome: OutcomeRefused, revision: "rev-2", errText: `manifest revision "rev-2" serves already, with other content`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.body != nil {
				srv.serve(tc.body, tc.etag)
			}
			r := m.Reload(t.Context(), TriggerAdmin)
			assert.Equal(t, tc.outcome, r.Outcome)
			assert.Equal(t, "bundle", r.Source)
			assert.Equal(t, tc.revision, r.Revision)
			assert.Equal(t, tc.revision, m.Revision())
			if tc.errText != "" {
				require.Error(t, r.Err)
				assert.Contains(t, r.Err.Error(), tc.errText)
			} else {
				require.NoError(t, r.Err)
			}
		})
	}
	assert.Contains(t, logs.String(), "p.rego:")
	assert.NotContains(t, logs.String(), "MRN-4711", "the log names the place, not the text")
}

// TestManagerBundlePolls: without being asked, the manager picks up a new
// bundle within poll.max.
func TestManagerBundlePolls(t *testing.T) {
	srv := newBundleServer(t)
	key, pubFile := newKey(t)
	srv.serve(makeBundle(t, "rev-1", map[string]string{"p.rego": allowPolicy("1")}, key), `"e1"`)
	cfg := Config{Bundle: BundleConfig{URL: srv.url(), VerificationKeyFile: pubFile,
		Poll: BundlePollConfig{Min: time.Second, Max: time.Second}}}
	var rec reloads
	m, err := NewManager(t.Context(), cfg, nil, rec.notify)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	srv.serve(makeBundle(t, "rev-2", map[string]string{"p.rego": allowPolicy("2")}, key), `"e2"`)
	require.Eventually(t, func() bool { return m.Revision() == "rev-2" }, 10*time.Second, 50*time.Millisecond)
	last := rec.all()[len(rec.all())-1]
	assert.Equal(t, TriggerPoll, last.Trigger)
}

func TestNewManagerBundleErrors(t *testing.T) {
	srv := newBundleServer(t)
	always304 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotModified)
	}))
	t.Cleanup(always304.Close)
	_, pubFile := newKey(t)
	tests := []struct {
		name    string
		cfg     BundleConfig
		errText string
	}{
		{"server has no bundle", BundleConfig{URL: srv.url(), VerificationKeyFile: pubFile}, "bundle download"},
		// A 304 is unsigned: it must not start ChartGuard without a policy.
		{"304 to the first download", BundleConfig{URL: always304.URL + "/b.tar.gz", VerificationKeyFile: pubFile}, "304 Not Modified to the first download"},
		{"no verification key", BundleConfig{URL: srv.url()}, "policy.bundle.verification_key_file: required"},
		{"bad url", BundleConfig{URL: "ftp://x/b.tar.gz", VerificationKeyFile: pubFile}, "policy.bundle.url"},
		{"poll below a second", BundleConfig{URL: srv.url(), VerificationKeyFile: pubFile, Poll: BundlePollConfig{Min: time.Millisecond, Max: time.Second}}, "policy.bundle.poll.min"},
		{"poll max below min", BundleConfig{URL: srv.url(), VerificationKeyFile: pubFile, Poll: BundlePollConfig{Min: 10 * time.Second, Max: 5 * time.Second}}, "policy.bundle.poll.max"},
		{"key file missing", BundleConfig{URL: srv.url(), VerificationKeyFile: filepath.Join(t.TempDir(), "none.pem")}, "policy.bundle.verification_key_file"},
		{"key file not a key", BundleConfig{URL: srv.url(), VerificationKeyFile: writeTemp(t, "not a key")}, "policy.bundle.verification_key_file"},
		{"key without url", BundleConfig{VerificationKeyFile: pubFile}, "policy.bundle.verification_key_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Dir: policyDir(t, map[string]string{"p.rego": allowPolicy("1")}), Bundle: tc.cfg}
			_, err := NewManager(t.Context(), cfg, nil, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.errText)
		})
	}
}

func writeTemp(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(f, []byte(body), 0o600))
	return f
}

// TestCheckBundle: config check reports a bad key file without touching
// the bundle server.
func TestCheckBundle(t *testing.T) {
	_, pubFile := newKey(t)
	require.NoError(t, CheckBundle(BundleConfig{}), "no bundle: nothing to check")
	require.NoError(t, CheckBundle(BundleConfig{URL: "https://bundles.invalid/b.tar.gz", VerificationKeyFile: pubFile}))
	err := CheckBundle(BundleConfig{URL: "https://bundles.invalid/b.tar.gz", VerificationKeyFile: writeTemp(t, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")})
	require.ErrorContains(t, err, "policy.bundle.verification_key_file")
	require.ErrorContains(t, CheckBundle(BundleConfig{URL: "x"}), "policy.bundle.url")
}

// TestBundleBombRefusedBeforeItIsRead: a small gzip of many large files is
// refused for its size uncompressed, without being unpacked into memory,
// before OPA reads it (and long before its signature is checked).
func TestBundleBombRefusedBeforeItIsRead(t *testing.T) {
	_, pubFile := newKey(t)
	srv := newBundleServer(t)
	bomb := bundleBomb(t, 15<<20)
	srv.serve(bomb(6), `"bomb"`) // 90 MiB unpacked
	f, err := newBundleFetcher(BundleConfig{URL: srv.url(), VerificationKeyFile: pubFile, Poll: BundlePollConfig{Min: time.Second, Max: time.Second}})
	require.NoError(t, err)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = f.fetch(t.Context())
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, errTooLarge)
	assert.Contains(t, err.Error(), "uncompressed")
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16<<20), "the bundle was unpacked into memory")

	// One just under the limit is read (and refused as unsigned).
	srv.serve(bomb(2), `"big"`)
	_, err = f.fetch(t.Context())
	require.Error(t, err)
	assert.NotErrorIs(t, err, errTooLarge)
}

// bundleBomb returns a maker of .tar.gz bundles of n data files of size
// bytes each. The gzip stream is one member per file, the large body
// compressed once and repeated (a gzip reader reads concatenated members
// as one stream).
func bundleBomb(t *testing.T, size int) func(n int) []byte {
	t.Helper()
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		require.NoError(t, err)
		_, err = w.Write(b)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		return buf.Bytes()
	}
	body := append(append([]byte(`{"x":"`), bytes.Repeat([]byte{'0'}, size-8)...), `"}`...)
	body = append(body, make([]byte, (512-len(body)%512)%512)...) // tar padding
	zbody := gz(body)
	return func(n int) []byte {
		var out bytes.Buffer
		for i := range n {
			var hdr bytes.Buffer
			tw := tar.NewWriter(&hdr)
			require.NoError(t, tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%d/data.json", i), Mode: 0o600, Size: int64(size), Typeflag: tar.TypeReg}))
			out.Write(gz(hdr.Bytes()))
			out.Write(zbody)
		}
		out.Write(gz(make([]byte, 1024))) // end of archive
		return out.Bytes()
	}
}
