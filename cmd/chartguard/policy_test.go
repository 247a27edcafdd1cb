package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	allowRego = `package chartguard

decision := {"allow": true, "reasons": []} if input.user.sub == "u1"

default decision := {"allow": false, "reasons": ["unknown user"]}
`
	allowTests = `package chartguard_test

import data.chartguard

test_u1_allowed if chartguard.decision.allow with input as {"user": {"sub": "u1"}}

test_others_denied if not chartguard.decision.allow with input as {"user": {"sub": "u2"}}
`
	failingTests = `package chartguard_test

import data.chartguard

test_u2_allowed if chartguard.decision.allow with input as {"user": {"sub": "u2"}}
`
	careTeamRego = `package chartguard

default decision := {"allow": false, "reasons": ["not on the patient's care team"]}

decision := {"allow": true, "reasons": []} if {
	some p in input.resource.patients
	input.relationship[p].care_team
}
`
	inputU1 = `{"user": {"iss": "https://idp", "sub": "u1", "name": "Dr X", "roles": ["physician"]},
 "request": {"method": "GET", "path": "/fhir/Patient/p1", "time": "2026-11-25T10:00:00Z"},
 "resource": {"kind": "fhir", "type": "Patient", "id": "p1", "patients": ["p1"], "patient_status": "known", "action": "read", "interaction": "read"},
 "relationship": {"p1": {"care_team": false, "pcp": false}}}`
)

// policyFiles writes files into a fresh directory.
func policyFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	return dir
}

func TestPolicyCommands(t *testing.T) {
	good := policyFiles(t, map[string]string{"p.rego": allowRego, "p_test.rego": allowTests})
	failing := policyFiles(t, map[string]string{"p.rego": allowRego, "p_test.rego": failingTests})
	broken := policyFiles(t, map[string]string{"p.rego": "package chartguard\n\ndecision := {\"allow\": true\n"})
	noTests := policyFiles(t, map[string]string{"p.rego": allowRego})
	loadErrs := policyFiles(t, map[string]string{"p.rego": allowRego + "\nload_errors contains \"roles.json: physician has no grants\"\n"})
	stringDecision := policyFiles(t, map[string]string{"p.rego": "package chartguard\n\ndecision := concat(\"\", [\"al\", \"low\"])\n"})
	constString := policyFiles(t, map[string]string{"p.rego": "package chartguard\n\ndecision := \"allow\"\n"})
	onlyTodo := policyFiles(t, map[string]string{"p.rego": allowRego, "p_test.rego": "package chartguard_test\n\ntodo_test_later if false\n"})
	helperInTests := policyFiles(t, map[string]string{
		"p.rego":      "package chartguard\n\ndecision := {\"allow\": ok(input.user.sub)}\n",
		"p_test.rego": "package chartguard\n\nok(s) if s == \"u1\"\n\ntest_u1 if decision.allow with input as {\"user\": {\"sub\": \"u1\"}}\n",
	})
	otherQuery := policyFiles(t, map[string]string{
		"p.rego":      "package myorg\n\ndecision := {\"allow\": true}\n",
		"p_test.rego": "package myorg\n\ntest_allow if decision.allow\n",
	})
	slow := policyFiles(t, map[string]string{"p.rego": "package chartguard\n\ndecision := {\"allow\": true} if {\n\tcount([x | some x in numbers.range(1, 50000); x % 7 == 0]) > 0\n}\n"})
	careTeam := policyFiles(t, map[string]string{"p.rego": careTeamRego})
	inputs := policyFiles(t, map[string]string{
		"u1.json":      inputU1,
		"typo.json":    `{"usr": {"sub": "u1"}}`,
		"notjson.json": `{"user":`,
		"null.json":    `null`,
		"bom.json":     "\uFEFF" + inputU1,
		"notime.json":  `{"user": {"sub": "u1"}}`,
	})
	in := func(name string) string { return filepath.Join(inputs, name) }

	tests := []struct {
		name    string
		args    []string
		code    int
		stdout  []string // each must appear
		stderr  []string
		without []string // must not appear in stdout
	}{
		{name: "test passes", args: []string{"policy", "test", good}, code: 0,
			stdout: []string{"p_test.rego:5: data.chartguard_test.test_u1_allowed: pass", "2 passed, 0 failed, 0 skipped; coverage 100.0%"}},
		{name: "test fails", args: []string{"policy", "test", failing}, code: 1,
			stdout: []string{"p_test.rego:5: data.chartguard_test.test_u2_allowed: fail", "0 passed, 1 failed"}, stderr: []string{"1 of 1 tests failed"}},
		{name: "test without tests", args: []string{"policy", "test", noTests}, code: 1, stderr: []string{"no tests ran"}},
		{name: "test with only todo tests", args: []string{"policy", "test", onlyTodo}, code: 1,
			stdout: []string{"0 passed, 0 failed, 1 skipped"}, stderr: []string{"no tests ran"}},
		{name: "test of a policy that needs its tests", args: []string{"policy", "test", helperInTests}, code: 2,
			stdout: []string{"1 passed"}, stderr: []string{"the policy without its tests does not load", "rego_type_error"}},
		{name: "test empty dir", args: []string{"policy", "test", ""}, code: 2, stderr: []string{"the policy directory is empty"}},
		{name: "test broken policy", args: []string{"policy", "test", broken}, code: 2, stderr: []string{"p.rego:4: rego_parse_error"}},
		{name: "test no dir", args: []string{"policy", "test"}, code: 2, stderr: []string{"want one policy directory, got 0 arguments; e.g. chartguard policy test configs/policy"}},
		{name: "eval dir as an argument", args: []string{"policy", "eval", good}, code: 2, stderr: []string{"give the directory with -d"}},

		{name: "check good", args: []string{"policy", "check", good}, code: 0, stdout: []string{": ok, revision "}},
		{name: "check syntax error", args: []string{"policy", "check", broken}, code: 2, stderr: []string{"p.rego:4: rego_parse_error"}},
		{name: "check failing tests", args: []string{"policy", "check", failing}, code: 2,
			stderr: []string{"policy tests failed", "p_test.rego:5: test_u2_allowed: fail"}},
		{name: "check load_errors", args: []string{"policy", "check", loadErrs}, code: 2,
			stderr: []string{"policy reports load errors", "physician has no grants"}},
		{name: "check constant string decision", args: []string{"policy", "check", constString}, code: 2,
			stderr: []string{"can never be a valid decision: p.rego:3", "decision is string"}},
		{name: "check empty dir", args: []string{"policy", "check", ""}, code: 2, stderr: []string{"the policy directory is empty"}},
		{name: "check missing dir", args: []string{"policy", "check", filepath.Join(good, "nope")}, code: 2},

		{name: "eval allow", args: []string{"policy", "eval", "-d", good, "--input", in("u1.json")}, code: 0,
			stdout: []string{`"allow": true`, `"revision": "`, `"reasons": []`}, without: []string{"why", "null"}},
		{name: "eval past the timeout", args: []string{"policy", "eval", "-d", slow, "--input", in("u1.json"), "--eval-timeout", "1ms"}, code: 1,
			stdout: []string{`"allow": false`, `"policy evaluation timed out"`}, stderr: []string{"policy.eval_timeout 1ms"}},
		{name: "eval past the timeout, explained", args: []string{"policy", "eval", "-d", slow, "--input", in("u1.json"), "--eval-timeout", "1ms", "--explain"}, code: 1,
			stdout: []string{`"allow": false`, "why denied", "decided allow=true; the decision above is what requests get"}},
		{name: "test with another query", args: []string{"policy", "test", otherQuery, "--query", "data.myorg.decision"}, code: 0,
			stdout: []string{"1 passed"}},
		{name: "eval null input", args: []string{"policy", "eval", "-d", good, "--input", in("null.json")}, code: 2, stderr: []string{"null"}},
		{name: "eval input with a byte order mark", args: []string{"policy", "eval", "-d", good, "--input", in("bom.json")}, code: 0,
			stdout: []string{`"allow": true`}},
		{name: "eval input without a time", args: []string{"policy", "eval", "-d", good, "--input", in("notime.json")}, code: 0,
			stdout: []string{`"allow": true`}, stderr: []string{"note: the input has no request.time; deciding at "}},
		{name: "eval empty dir", args: []string{"policy", "eval", "-d", "", "--input", in("u1.json")}, code: 2, stderr: []string{"the policy directory is empty"}},
		{name: "eval explain deny", args: []string{"policy", "eval", "-d", careTeam, "--input", in("u1.json"), "--explain"}, code: 0,
			stdout: []string{`"allow": false`, "why denied (revision ", `p.rego:3: default decision := {"allow": false, "reasons": ["not on the patient's care team"]}`}},
		{name: "eval explain allow", args: []string{"policy", "eval", "-d", good, "--input", in("u1.json"), "--explain"}, code: 0,
			stdout: []string{"why allowed", `p.rego:3: decision := {"allow": true, "reasons": []}`}, without: []string{"default decision"}},
		{name: "eval string decision fails closed", args: []string{"policy", "eval", "-d", stringDecision, "--input", in("u1.json")}, code: 1,
			stdout: []string{`"allow": false`, `"policy decision malformed"`}, stderr: []string{"decision is string"}},
		{name: "eval unknown input key", args: []string{"policy", "eval", "-d", good, "--input", in("typo.json")}, code: 2,
			stderr: []string{"--input", `unknown field "usr"`}},
		{name: "eval input not JSON", args: []string{"policy", "eval", "-d", good, "--input", in("notjson.json")}, code: 2},
		{name: "eval input missing", args: []string{"policy", "eval", "-d", good, "--input", in("none.json")}, code: 2},
		{name: "eval broken policy", args: []string{"policy", "eval", "-d", broken, "--input", in("u1.json")}, code: 2, stderr: []string{"p.rego:4: rego_parse_error"}},
		{name: "eval without --input", args: []string{"policy", "eval", "-d", good}, code: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			assert.Equal(t, tc.code, code, "stdout: %s\nstderr: %s", out.String(), errb.String())
			for _, s := range tc.stdout {
				assert.Contains(t, out.String(), s)
			}
			for _, s := range tc.stderr {
				assert.Contains(t, errb.String(), s)
			}
			for _, s := range tc.without {
				assert.NotContains(t, out.String(), s)
			}
		})
	}
}

// TestPolicyEvalPrintsDecisionJSON: stdout starts with the decision as
// one JSON document.
func TestPolicyEvalPrintsDecisionJSON(t *testing.T) {
	dir := policyFiles(t, map[string]string{"p.rego": allowRego, "in.json": ""})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "in.json"), []byte(inputU1), 0o644))
	var out, errb bytes.Buffer
	require.Equal(t, 0, run([]string{"policy", "eval", "-d", dir, "--input", filepath.Join(dir, "in.json")}, &out, &errb), errb.String())
	var got struct {
		ID       string `json:"id"`
		Revision string `json:"revision"`
		Decision struct {
			Allow   bool     `json:"allow"`
			Reasons []string `json:"reasons"`
		} `json:"decision"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	assert.True(t, got.Decision.Allow)
	assert.Len(t, got.ID, 32)
	assert.Len(t, got.Revision, 16)
}

// TestServeReloadsOnSIGHUP: the real binary reloads its policy on SIGHUP,
// refuses a broken one and keeps serving.
func TestServeReloadsOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := setupDirs(t)
	pol := policyFiles(t, map[string]string{"p.rego": allowRego, "p_test.rego": allowTests})
	t.Setenv("CG_POLICY", pol)
	bin := filepath.Join(t.TempDir(), "chartguard")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	admin := freePort(t)
	cfg := filepath.Join(dir, "serve.yaml")
	good, err := os.ReadFile("testdata/good.yaml")
	require.NoError(t, err)
	good = bytes.Replace(good, []byte(`listen: "127.0.0.1:0", token_file`), []byte(`listen: "`+admin+`", token_file`), 1)
	require.NoError(t, os.WriteFile(cfg, good, 0o600))
	srv := exec.Command(bin, "serve", "-c", cfg)
	logs := &syncBuffer{}
	srv.Stderr = logs
	require.NoError(t, srv.Start())
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()

	metrics := func() string {
		req, _ := http.NewRequest("GET", "http://"+admin+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer 0123456789abcdef0123")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitFor := func(what string, cond func() bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("%s never happened; logs:\n%s", what, logs.String())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitFor("serving", func() bool { return strings.Contains(metrics(), "chartguard_policy_revision_info") })
	first := revisionLine(metrics())
	require.NotEmpty(t, first)

	// A broken policy: refused, counted.
	require.NoError(t, os.WriteFile(filepath.Join(pol, "p.rego"), []byte("package chartguard\n\ndecision := {\n"), 0o644))
	require.NoError(t, srv.Process.Signal(syscall.SIGHUP))
	waitFor("refused reload", func() bool {
		return strings.Contains(metrics(), `chartguard_policy_reloads_total{outcome="refused",trigger="signal"} 1`)
	})
	assert.Equal(t, first, revisionLine(metrics()), "the old revision keeps serving")
	// A good one serves: the directory watch may load it before the
	// signal does, so the signal's reload is loaded or unchanged.
	require.NoError(t, os.WriteFile(filepath.Join(pol, "p.rego"), []byte(allowRego+"\n# v2\n"), 0o644))
	require.NoError(t, srv.Process.Signal(syscall.SIGHUP))
	waitFor("signal reload of the good policy", func() bool {
		m := metrics()
		return strings.Contains(m, `chartguard_policy_reloads_total{outcome="loaded",trigger="signal"} 1`) ||
			strings.Contains(m, `chartguard_policy_reloads_total{outcome="unchanged",trigger="signal"} 1`)
	})
	assert.NotEqual(t, first, revisionLine(metrics()), "a new revision serves")
	assert.Contains(t, logs.String(), `"msg":"policy reload refused; previous revision keeps serving"`)
	assert.Contains(t, logs.String(), `"msg":"policy revision serving"`)

	require.NoError(t, srv.Process.Signal(syscall.SIGTERM))
	require.NoError(t, srv.Wait(), "clean exit on SIGTERM; logs:\n%s", logs.String())
}

// revisionLine is the chartguard_policy_revision_info series in a scrape.
func revisionLine(metrics string) string {
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, "chartguard_policy_revision_info{") {
			return l
		}
	}
	return ""
}

// syncBuffer is a bytes.Buffer safe for a process writing while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
