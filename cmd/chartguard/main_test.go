package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// setupDirs provides what testdata/good.yaml points at.
func setupDirs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "admin-token"), []byte("0123456789abcdef0123\n"), 0o600))
	writeAuditKey(t, dir)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "badpolicy"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "badpolicy", "p.rego"),
		[]byte("package chartguard\n\ndecision := {\"allow\": true\n"), 0o600))
	abs, err := filepath.Abs("../../configs/policy")
	require.NoError(t, err)
	t.Setenv("CG_DIR", dir)
	t.Setenv("CG_POLICY", abs)
	return dir
}

func TestConfigCheck(t *testing.T) {
	setupDirs(t)
	cases := []struct {
		file   string
		code   int
		stderr []string // each must appear
	}{
		{"good.yaml", 0, nil},
		{"unknown-key.yaml", 2, []string{"upstream.timout: line 2: unknown key", "timeout"}},
		{"wrong-type.yaml", 2, []string{"audit.durable: line 4: want true or false", "limits.max_body: line 5: want a whole number"}},
		{"not-yet.yaml", 2, []string{"mfa: line 6: not supported yet"}},
		{"missing.yaml", 2, []string{"public_url: required", "upstream.url: required", "oidc.issuer", "audit.dir"}},
		{"old-tls.yaml", 2, []string{`tls.min_version: "1.0" is not allowed`}},
		{"bad-policy.yaml", 2, []string{"policy", "p.rego"}},
		{"does-not-exist.yaml", 2, []string{"no such file"}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run([]string{"config", "check", "-c", filepath.Join("testdata", c.file)}, &out, &errb)
			assert.Equal(t, c.code, code, "stderr: %s", errb.String())
			for _, s := range c.stderr {
				assert.Contains(t, errb.String(), s)
			}
			if c.code == 0 {
				assert.Contains(t, out.String(), "ok")
			}
		})
	}
}

func TestUsageAndVersion(t *testing.T) {
	var out, errb bytes.Buffer
	assert.Equal(t, 0, run([]string{"version"}, &out, &errb))
	assert.Contains(t, out.String(), "chartguard ")
	assert.Equal(t, 2, run([]string{"frobnicate"}, &out, &errb))
	assert.Equal(t, 2, run([]string{"config", "check"}, &out, &errb), "missing -c")
	assert.Equal(t, 2, run([]string{"serve", "--nope"}, &out, &errb))
}

// TestServeBinary builds the real binary and checks its exit codes: 2 for
// a bad config, and a clean 0 on SIGTERM after serving.
func TestServeBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := setupDirs(t)
	bin := filepath.Join(t.TempDir(), "chartguard")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	bad := exec.Command(bin, "serve", "-c", "testdata/not-yet.yaml")
	var stderr bytes.Buffer
	bad.Stderr = &stderr
	err := bad.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.ExitCode())
	assert.Contains(t, stderr.String(), "not supported yet")

	// A good config: serves /healthz on the admin listener, exits 0 on SIGTERM.
	admin := freePort(t)
	cfg := filepath.Join(dir, "serve.yaml")
	good, err := os.ReadFile("testdata/good.yaml")
	require.NoError(t, err)
	good = bytes.Replace(good, []byte(`listen: "127.0.0.1:0", token_file`), []byte(`listen: "`+admin+`", token_file`), 1)
	require.NoError(t, os.WriteFile(cfg, good, 0o600))
	srv := exec.Command(bin, "serve", "-c", cfg)
	srv.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOGC=") })
	var logs bytes.Buffer
	srv.Stderr = &logs
	require.NoError(t, srv.Start())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		resp, err := http.Get("http://" + admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			assert.Equal(t, 200, resp.StatusCode)
			break
		}
		select {
		case <-ctx.Done():
			_ = srv.Process.Kill()
			t.Fatalf("serve never became healthy; logs:\n%s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	// runtime.min_heap (default 64 MiB): serve raised GOGC above Go's 100,
	// as its own metrics show, and said so in the log.
	assert.Greater(t, scrapeGauge(t, admin, "go_gc_gogc_percent"), 100.0)
	require.NoError(t, srv.Process.Signal(syscall.SIGTERM))
	require.NoError(t, srv.Wait(), "clean exit on SIGTERM; logs:\n%s", logs.String())
	assert.Contains(t, logs.String(), `"msg":"serving"`, "operational logs are slog JSON on stderr")
	assert.Contains(t, logs.String(), `"msg":"garbage collector heap floor set","min_heap_bytes":67108864`)
}

// scrapeGauge reads one unlabelled sample from the admin listener's
// /metrics (setupDirs' admin token).
func scrapeGauge(t *testing.T, admin, name string) float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+admin+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer 0123456789abcdef0123")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			require.NoError(t, err)
			return f
		}
	}
	t.Fatalf("%s not in /metrics", name)
	return 0
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestServeLogsNoLoadErrorText: a policy refused at start for load_errors
// exits 2 with their count on stderr (the operational log), not their text,
// which may quote patient ids from the policy's data.
func TestServeLogsNoLoadErrorText(t *testing.T) {
	setupDirs(t)
	pol := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(pol, "p.rego"), []byte(allowRego+
		"\nload_errors contains \"vip_patients.Patient-MRN-4711 must be true\"\n"), 0o600))
	t.Setenv("CG_POLICY", pol)
	var out, errb bytes.Buffer
	assert.Equal(t, 2, run([]string{"serve", "-c", "testdata/good.yaml"}, &out, &errb))
	assert.Contains(t, errb.String(), "policy reports load errors (1)")
	assert.NotContains(t, errb.String(), "MRN-4711")

	// policy check is where the admin reads them.
	errb.Reset()
	assert.Equal(t, 2, run([]string{"policy", "check", pol}, &out, &errb))
	assert.Contains(t, out.String()+errb.String(), "vip_patients.Patient-MRN-4711 must be true")
}
