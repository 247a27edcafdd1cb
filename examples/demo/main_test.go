package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/examples/demo/dex"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers.
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

// loopback is every address on an ephemeral loopback port.
var loopback = []string{"-listen", "127.0.0.1:0", "-fhir-addr", "127.0.0.1:0", "-dex-addr", "127.0.0.1:0"}

func TestRunRefusesBadArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		args      []string
		wantLoop  bool
		wantUsage bool
	}{
		{"ChartGuard on all interfaces", append(loopback[2:], "-listen", "0.0.0.0:0"), true, false},
		{"ChartGuard on every interface", append(loopback[2:], "-listen", ":8443"), true, false},
		{"FHIR on all interfaces", append(loopback[:4:4], "-dex-addr", "127.0.0.1:0", "-fhir-addr", "0.0.0.0:0"), true, false},
		{"Dex on a LAN address", append(loopback[:4:4], "-dex-addr", "10.0.0.1:0"), true, false},
		{"unknown flag", []string{"-config", "x"}, false, true},
		{"stray argument", []string{"serve"}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut syncBuffer
			err := run(t.Context(), tc.args, &out, &errOut, func(*demo) {
				t.Error("servers must not start")
			})
			require.Error(t, err)
			assert.Equal(t, tc.wantLoop, errors.Is(err, dex.ErrNotLoopback), err)
			assert.Equal(t, tc.wantUsage, errors.Is(err, errUsage), err)
			assert.Empty(t, out.String())
		})
	}
}

func TestRunRefusesMissingPolicy(t *testing.T) {
	t.Parallel()
	var out, errOut syncBuffer
	err := run(t.Context(), append(loopback, "-policy", t.TempDir()), &out, &errOut, func(*demo) {
		t.Error("servers must not start")
	})
	assert.ErrorIs(t, err, errPolicy)
	assert.Empty(t, out.String())
}

// TestDemo starts the whole demo once, as `go run .` does, drives browser
// sign-in through it, and stops it.
func TestDemo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	startedc := make(chan *demo, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, loopback, &out, &errOut, func(d *demo) { startedc <- d })
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("demo stderr:\n%s", errOut.String())
		}
	})
	var d *demo
	select {
	case d = <-startedc:
	case err := <-done:
		t.Fatalf("run() = %v before starting; stderr: %s", err, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatal("run() did not start within 30s")
	}

	t.Run("group", func(t *testing.T) {
		t.Run("banner", func(t *testing.T) { testBanner(t, d, out.String()) })
		t.Run("sign-in", func(t *testing.T) { testSignIn(t, d) })
		t.Run("wrong password", func(t *testing.T) { testWrongPassword(t, d) })
	})

	t.Run("stops when cancelled", func(t *testing.T) {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Fatal("run() did not stop within 20s of cancellation")
		}
		c := &http.Client{Timeout: 5 * time.Second}
		for _, u := range []string{d.URL + "/fhir/metadata", d.IdP.Issuer + "/.well-known/openid-configuration", d.FHIRBase + "/metadata"} {
			resp, err := c.Get(u)
			if err == nil {
				_ = resp.Body.Close()
			}
			assert.Error(t, err, "%s still answers after shutdown", u)
		}
		assert.NoDirExists(t, d.dir, "temporary directory (secrets, audit log) left behind")
	})
}

func testBanner(t *testing.T, d *demo, banner string) {
	t.Parallel()
	assert.Contains(t, banner, d.URL+"/fhir/Patient/p1")
	assert.Contains(t, banner, d.IdP.Issuer)
	for _, u := range d.IdP.Users {
		assert.Contains(t, banner, u.Email)
		assert.Contains(t, banner, u.Password)
	}
	assert.Contains(t, banner, "physician  sees Patient/p1")
	assert.NotContains(t, banner, d.IdP.ClientSecret)
}
