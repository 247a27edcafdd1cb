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

func TestRunRefusesBadArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		args      []string
		wantLoop  bool
		wantUsage bool
	}{
		{"FHIR on all interfaces", []string{"-fhir-addr", "0.0.0.0:0", "-dex-addr", "127.0.0.1:0"}, true, false},
		{"Dex on a LAN address", []string{"-fhir-addr", "127.0.0.1:0", "-dex-addr", "10.0.0.1:0"}, true, false},
		{"Dex on every interface", []string{"-fhir-addr", "127.0.0.1:0", "-dex-addr", ":5556"}, true, false},
		{"unknown flag", []string{"-listen", "x"}, false, true},
		{"stray argument", []string{"serve"}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut syncBuffer
			err := run(t.Context(), tc.args, &out, &errOut, func(string, *dex.IdP) {
				t.Error("servers must not start")
			})
			require.Error(t, err)
			assert.Equal(t, tc.wantLoop, errors.Is(err, dex.ErrNotLoopback), err)
			assert.Equal(t, tc.wantUsage, errors.Is(err, errUsage), err)
			assert.Empty(t, out.String())
		})
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	type started struct {
		fhirBase string
		idp      *dex.IdP
	}
	startedc := make(chan started, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-fhir-addr", "127.0.0.1:0", "-dex-addr", "localhost:0"}, &out, &errOut,
			func(fhirBase string, idp *dex.IdP) { startedc <- started{fhirBase, idp} })
	}()

	var s started
	select {
	case s = <-startedc:
	case err := <-done:
		t.Fatalf("run() = %v before starting; stderr: %s", err, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatal("run() did not start within 30s")
	}
	c := &http.Client{Timeout: 5 * time.Second}
	for _, u := range []string{s.fhirBase + "/metadata", s.fhirBase + "/Patient/p1", s.idp.Issuer + "/.well-known/openid-configuration"} {
		resp, err := c.Get(u)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, u)
	}

	banner := out.String()
	assert.Contains(t, banner, s.fhirBase)
	assert.Contains(t, banner, s.idp.Issuer)
	assert.Contains(t, banner, "does not work")
	for _, u := range s.idp.Users {
		assert.Contains(t, banner, u.Email)
		assert.Contains(t, banner, u.Password)
	}
	assert.NotContains(t, banner, s.idp.ClientSecret)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run() did not stop within 10s of cancellation")
	}
	_, err := c.Get(s.idp.Issuer + "/.well-known/openid-configuration")
	assert.Error(t, err, "Dex still answers after shutdown")
	_, err = c.Get(s.fhirBase + "/metadata")
	assert.Error(t, err, "FHIR upstream still answers after shutdown")
}
