package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const minimalYAML = `
public_url: "https://emr.example.org"
upstream: {url: "http://127.0.0.1:8081"}
oidc: {issuer: "https://idp.example.org", client_id: chartguard}
audit: {dir: /var/lib/chartguard/audit, signing_key_file: /etc/chartguard/audit.key}
admin: {listen: ""}
`

func noEnv(string) (string, bool) { return "", false }

// withUpstream replaces the minimal config's upstream line.
func withUpstream(line string) string {
	return strings.Replace(minimalYAML, `upstream: {url: "http://127.0.0.1:8081"}`, line, 1)
}

func TestSafeDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(minimalYAML), noEnv)
	require.NoError(t, err)
	assert.Empty(t, cfg.TrustedProxies, "no proxy is trusted by default")
	assert.Empty(t, cfg.trustedProxies)
	assert.True(t, cfg.Audit.Durable, "audit is durable by default")
	assert.True(t, cfg.Audit.FailClosed, "audit fails closed by default")
	assert.Equal(t, "1.2", cfg.TLS.MinVersion)
	assert.False(t, cfg.Upstream.PassAuthorization)
	assert.Equal(t, "none", cfg.Upstream.Auth.Mode)
	assert.Equal(t, "token", cfg.Admin.MetricsAuth)
	assert.Equal(t, 10*time.Second, cfg.Limits.ReadHeaderTimeout)
	assert.Equal(t, int64(32<<10), cfg.Limits.MaxHeaderBytes)
	assert.Equal(t, int64(10<<20), cfg.Limits.MaxBody)
	assert.Equal(t, 100, cfg.Limits.MaxQueryParams)
	assert.Equal(t, 50*time.Millisecond, cfg.Policy.EvalTimeout)
	assert.Equal(t, 60*time.Second, cfg.OIDC.ClockSkew)
	assert.Equal(t, []string{"RS256", "ES256", "PS256"}, cfg.OIDC.SigningAlgs)
	assert.Equal(t, int64(64<<20), cfg.Runtime.MinHeap)
}

func TestExplicitOverridesDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(minimalYAML+`
limits: {max_body: 2MiB, max_header_bytes: 1KB, unauthenticated_rps: 0.5}
tls: {min_version: "1.3"}
trusted_proxies: [10.0.0.0/8, 192.168.1.1]
runtime: {min_heap: 0}
`), noEnv)
	require.NoError(t, err)
	assert.Zero(t, cfg.Runtime.MinHeap, "0 turns the heap floor off")
	assert.Equal(t, int64(2<<20), cfg.Limits.MaxBody)
	assert.Equal(t, int64(1000), cfg.Limits.MaxHeaderBytes)
	assert.InDelta(t, 0.5, cfg.Limits.UnauthenticatedRPS, 1e-9)
	assert.Equal(t, "1.3", cfg.TLS.MinVersion)
	assert.Len(t, cfg.trustedProxies, 2)
	cfg, err = ParseConfig([]byte(strings.Replace(minimalYAML, "audit: {dir: /var/lib/chartguard/audit,",
		"audit: {dir: /x, durable: false, fail_closed: false,", 1)), noEnv)
	require.NoError(t, err)
	assert.False(t, cfg.Audit.Durable)
	assert.False(t, cfg.Audit.FailClosed)
}

func TestConfigErrorsNameKeyAndFix(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown top-level key", minimalYAML + "listn: x\n", []string{"listn: line 7: unknown key; valid keys here:", "listen"}},
		{"unknown nested key", minimalYAML + "limits: {max_bodyy: 1}\n", []string{"limits.max_bodyy: line 7: unknown key", "max_body"}},
		{"wrong type bool", withUpstream("upstream: {url: 'http://x', pass_authorization: maybe}"), []string{"upstream.pass_authorization", "want true or false"}},
		{"quoted bool", withUpstream("upstream: {url: 'http://x', pass_authorization: 'true'}"), []string{"upstream.pass_authorization", "want true or false"}},
		{"wrong type duration", withUpstream("upstream: {url: 'http://x', timeout: 30}"), []string{"upstream.timeout", "a duration such as 30s"}},
		{"wrong type size", minimalYAML + "limits: {max_body: big}\n", []string{"limits.max_body", "KiB"}},
		{"negative heap floor", minimalYAML + "runtime: {min_heap: -1}\n", []string{"runtime.min_heap", "KiB"}},
		{"huge heap floor", minimalYAML + "runtime: {min_heap: 1TiB}\n", []string{"runtime.min_heap: must be a size up to 64GiB"}},
		{"list expected", minimalYAML + "trusted_proxies: 10.0.0.0/8\n", []string{"trusted_proxies", "want a list"}},
		{"bad CIDR", minimalYAML + "trusted_proxies: [everyone]\n", []string{"trusted_proxies[0]", "not a CIDR"}},
		{"not supported yet", minimalYAML + "session: {max_sessions: 3}\n", []string{"session.max_sessions: line 7: not supported yet (concurrent-session limits)"}},
		{"redis store not yet", minimalYAML + "session: {store: redis}\n", []string{"session.store", "not supported yet"}},
		{"bundle url not a URL", minimalYAML + "policy: {bundle: {url: x}}\n", []string{"policy.bundle.url", "absolute http(s) URL"}},
		{"client_credentials incomplete", withUpstream("upstream: {url: 'http://x', auth: {mode: client_credentials}}"), []string{"upstream.auth.token_url: required", "upstream.auth.client_id: required", "upstream.auth.client_secret_file: required"}},
		{"old TLS", minimalYAML + "tls: {min_version: '1.1'}\n", []string{"tls.min_version", `use "1.2" or "1.3"`}},
		{"half TLS", minimalYAML + "tls: {cert_file: /c.pem}\n", []string{"tls.cert_file and tls.key_file: set both or neither"}},
		{"missing required", "admin: {listen: ''}\n", []string{"public_url: required", "upstream.url: required", "oidc.issuer", "audit.dir"}},
		{"relative public_url", strings.Replace(minimalYAML, "https://emr.example.org", "emr.example.org", 1), []string{"public_url", "absolute http(s) URL"}},
		{"admin without token", strings.Replace(minimalYAML, "admin: {listen: \"\"}", "admin: {listen: '127.0.0.1:9090'}", 1), []string{"admin.token_file: required"}},
		{"unset env", strings.Replace(minimalYAML, "client_id: chartguard}", `client_id: "${CG_NOPE}"}`, 1), []string{"oidc.client_id", "environment variable CG_NOPE is not set"}},
		{"alias", minimalYAML + "cors: {allowed_origins: &o [a], allowed_headers: *o}\n", []string{"aliases are not allowed"}},
		{"repeated key", minimalYAML + "listen: ':1'\nlisten: ':2'\n", []string{"listen: line 8: key repeated"}},
		{"bad route", minimalYAML + "routes: [{path: chart, action: read}]\n", []string{"routes[0].path: must start with '/'"}},
		{"not YAML", "a: [b\n", []string{"not valid YAML"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(c.yaml), noEnv)
			require.Error(t, err)
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	_, err := ParseConfig([]byte(minimalYAML+"listn: x\nlimits: {max_body: big, max_query_params: many}\n"), noEnv)
	require.Error(t, err)
	for _, w := range []string{"listn", "limits.max_body", "limits.max_query_params"} {
		assert.Contains(t, err.Error(), w)
	}
}

func TestEnvExpandsInsideValuesOnly(t *testing.T) {
	env := map[string]string{"EMR_HOST": "emr.internal:8081", "INJECT": "x\nsession: {store: memory}"}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := ParseConfig([]byte(strings.Replace(minimalYAML, "http://127.0.0.1:8081", "http://${EMR_HOST}", 1)), getenv)
	require.NoError(t, err)
	assert.Equal(t, "http://emr.internal:8081", cfg.Upstream.URL)

	// A variable's value is a string, never YAML structure.
	cfg, err = ParseConfig([]byte(minimalYAML+"node_id: \"${INJECT}\"\n"), getenv)
	require.NoError(t, err)
	assert.Equal(t, env["INJECT"], cfg.NodeID)
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "admin-token")
	require.NoError(t, os.WriteFile(tok, []byte("s3cret-admin-token-value\n"), 0o600))
	y := strings.Replace(minimalYAML, `admin: {listen: ""}`, "admin: {listen: '127.0.0.1:0', token_file: "+tok+"}", 1)
	cfg, err := ParseConfig([]byte(y), noEnv)
	require.NoError(t, err)
	assert.Equal(t, "s3cret-admin-token-value", cfg.adminToken, "trailing newline trimmed")

	require.NoError(t, os.WriteFile(tok, []byte("short\n"), 0o600))
	_, err = ParseConfig([]byte(y), noEnv)
	assert.ErrorContains(t, err, "admin.token_file: token shorter than 16")

	_, err = ParseConfig([]byte(strings.Replace(y, tok, tok+".missing", 1)), noEnv)
	assert.ErrorContains(t, err, "admin.token_file: cannot read")
}

func TestExampleConfigIsValid(t *testing.T) {
	raw, err := os.ReadFile("../configs/chartguard.example.yaml")
	require.NoError(t, err)
	dir := t.TempDir()
	tok := filepath.Join(dir, "tok")
	require.NoError(t, os.WriteFile(tok, []byte("0123456789abcdef0123"), 0o600))
	secret := filepath.Join(dir, "oidc-secret")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret"), 0o600))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	keyFile := filepath.Join(dir, "assertion.pem")
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	r := strings.NewReplacer("/etc/chartguard/admin-token", tok, "/etc/chartguard/oidc-client-secret", secret,
		"/etc/chartguard/assertion-key.pem", keyFile)
	cfg, err := ParseConfig([]byte(r.Replace(string(raw))), noEnv)
	require.NoError(t, err, "the example config holds only built keys")
	assert.True(t, cfg.ssoEnabled())
	assert.Equal(t, 15*time.Minute, cfg.Session.IdleTimeout)
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(minimalYAML))
	f.Add([]byte(minimalYAML + "limits: {max_body: 2MiB}\nroutes: [{path: /a/{patient}, action: read}]\n"))
	f.Add([]byte("a: [b\n"))
	f.Add([]byte("listen: *x\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := ParseConfig(raw, noEnv)
		if err != nil {
			require.Nil(t, cfg)
			return
		}
		// Whatever parsed keeps the safety floor.
		require.Contains(t, []string{"1.2", "1.3"}, cfg.TLS.MinVersion)
		require.NotNil(t, cfg.publicURL)
		require.NotNil(t, cfg.upstreamURL)
	})
}
