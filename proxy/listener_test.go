package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and returns the
// PEM file paths and the parsed certificate.
func writeCert(t *testing.T, dir, name string, client bool) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err = x509.ParseCertificate(der)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	return certFile, keyFile, cert
}

// serve runs h.proxy's Serve on fresh loopback listeners.
func serve(t *testing.T, p *Proxy) (addr, adminAddr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, aln) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return ln.Addr().String(), aln.Addr().String()
}

func TestTLSListenerRefusesOldVersions(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := writeCert(t, dir, "proxy", false)
	h := newHarness(t, nil, func(c *Config) { c.TLS.CertFile, c.TLS.KeyFile = certFile, keyFile }, nil)
	addr, _ := serve(t, h.proxy)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	for _, c := range []struct {
		name     string
		min, max uint16
		ok       bool
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, false},
		{"TLS 1.1", tls.VersionTLS11, tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: c.min, MaxVersion: c.max}}}
			req, _ := http.NewRequest("GET", "https://"+addr+"/fhir/Patient/p1", nil)
			req.Header.Set("Authorization", "Bearer good")
			resp, err := client.Do(req)
			if !c.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, 200, resp.StatusCode)
		})
	}
}

func TestAdminEndpoints(t *testing.T) {
	h := newHarness(t, nil, func(c *Config) { c.adminToken = "correct-horse-battery-staple" }, nil)
	_, admin := serve(t, h.proxy)
	get := func(path, tok string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+admin+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	code, _ := get("/healthz", "")
	assert.Equal(t, 200, code)
	code, _ = get("/readyz", "")
	assert.Equal(t, 200, code)
	code, _ = get("/metrics", "")
	assert.Equal(t, 401, code, "metrics need the admin token")
	code, _ = get("/metrics", "correct-horse-battery-stapl")
	assert.Equal(t, 401, code)
	code, _ = get("/anything", "")
	assert.Equal(t, 401, code)

	h.do(t, "GET", "/fhir/Patient/p1", good, "")
	code, body := get("/metrics", "correct-horse-battery-staple")
	require.Equal(t, 200, code)
	for _, series := range []string{
		`chartguard_requests_total{action="read",code="200",outcome="allowed"} 1`,
		"chartguard_request_duration_seconds_bucket",
		"chartguard_upstream_duration_seconds_bucket",
		"chartguard_policy_duration_seconds_bucket",
	} {
		assert.Contains(t, body, series)
	}
	assert.NotContains(t, body, "p1", "metric labels carry no ids")

	h.audit.fail = true
	code, body = get("/readyz", "")
	assert.Equal(t, 503, code)
	assert.Contains(t, body, "audit")
}

func TestMetricsAuthNone(t *testing.T) {
	h := newHarness(t, nil, func(c *Config) { c.Admin.MetricsAuth = "none" }, nil)
	_, admin := serve(t, h.proxy)
	resp, err := http.Get("http://" + admin + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
}

// TestUpstreamMTLS: with auth.mode mtls, ChartGuard presents its client
// certificate and verifies the EMR against the configured CA.
func TestUpstreamMTLS(t *testing.T) {
	dir := t.TempDir()
	srvCert, srvKey, srvX509 := writeCert(t, dir, "emr", false)
	cliCert, cliKey, cliX509 := writeCert(t, dir, "chartguard", true)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(cliX509)
	emr := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = w.Write([]byte(`{"resourceType":"Patient","id":"p1","name":[{"text":"` + r.TLS.PeerCertificates[0].Subject.CommonName + `"}]}`))
	}))
	pair, err := tls.LoadX509KeyPair(srvCert, srvKey)
	require.NoError(t, err)
	emr.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: clientCAs, MinVersion: tls.VersionTLS12}
	emr.StartTLS()
	t.Cleanup(emr.Close)
	_ = srvX509

	h := newHarness(t, nil, func(c *Config) {
		c.Upstream.Auth.Mode = "mtls"
		c.Upstream.TLS = UpstreamTLS{CAFile: srvCert, CertFile: cliCert, KeyFile: cliKey}
	}, nil)
	h.proxy.cfg.upstreamURL.Scheme = "https"
	h.proxy.cfg.upstreamURL.Host = strings.TrimPrefix(emr.URL, "https://")
	resp := h.do(t, "GET", "/fhir/Patient/p1", good, "")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, readBody(t, resp), `"text":"chartguard"`, "the EMR saw ChartGuard's client certificate")

	// Without the right CA the EMR is not trusted: 502, audited as error.
	h2 := newHarness(t, nil, nil, nil)
	h2.proxy.cfg.upstreamURL.Scheme = "https"
	h2.proxy.cfg.upstreamURL.Host = strings.TrimPrefix(emr.URL, "https://")
	resp = h2.do(t, "GET", "/fhir/Patient/p1", good, "")
	assert.Equal(t, 502, resp.StatusCode)
}
