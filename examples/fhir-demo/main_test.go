package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/examples/fhir-demo/devissuer"
)

// syncBuffer is a bytes.Buffer safe for the servers' error log.
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
		{"fhir on all interfaces", []string{"-fhir-addr", "0.0.0.0:0", "-issuer-addr", "127.0.0.1:0"}, true, false},
		{"issuer on a LAN address", []string{"-fhir-addr", "127.0.0.1:0", "-issuer-addr", "10.0.0.1:0"}, true, false},
		{"issuer on every interface", []string{"-fhir-addr", "127.0.0.1:0", "-issuer-addr", ":8082"}, true, false},
		{"unknown flag", []string{"-listen", "x"}, false, true},
		{"stray argument", []string{"serve"}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out syncBuffer
			err := run(context.Background(), tc.args, &out, func(string, string) {
				t.Error("servers must not start")
			})
			require.Error(t, err)
			assert.Equal(t, tc.wantLoop, errors.Is(err, devissuer.ErrNotLoopback), err)
			assert.Equal(t, tc.wantUsage, errors.Is(err, errUsage), err)
		})
	}
}

func TestRunServesBothUntilCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type urls struct{ fhir, issuer string }
	ready := make(chan urls, 1)
	done := make(chan error, 1)
	var out syncBuffer
	go func() {
		done <- run(ctx, []string{"-fhir-addr", "127.0.0.1:0", "-issuer-addr", "127.0.0.1:0",
			"-audience", "demo-aud", "-patients", "5"}, &out, func(f, i string) { ready <- urls{f, i} })
	}()
	var u urls
	select {
	case u = <-ready:
	case err := <-done:
		t.Fatalf("run returned early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("servers did not start")
	}

	resp, err := http.Get(u.fhir + "/Patient/p5")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = http.Get(u.fhir + "/Patient/p6")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "-patients is honoured")

	resp, err = http.Post(u.issuer+"/dev/token?role=physician", "", nil)
	require.NoError(t, err)
	var tok map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotEmpty(t, tok["access_token"])

	banner := out.String()
	assert.Contains(t, banner, "DEVELOPMENT ONLY")
	assert.Contains(t, banner, u.issuer)
	assert.Contains(t, banner, u.fhir)
	assert.Contains(t, banner, "curl -s -X POST '"+u.issuer+"/dev/token?role=physician")
	assert.Contains(t, banner, `"demo-aud"`)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop after cancellation")
	}
}
