package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFlagsRejectsBadValues(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{"zero duration", []string{"-duration", "0s"}},
		{"negative warm-up", []string{"-warmup", "-1s"}},
		{"zero concurrency", []string{"-concurrency", "0"}},
		{"zero rounds", []string{"-rounds", "0"}},
		{"zero tokens", []string{"-tokens", "0"}},
		{"negative eval timeout", []string{"-eval-timeout", "-1s"}},
		{"unknown flag", []string{"-nope"}},
		{"stray argument", []string{"extra"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := parseFlags(tc.args, &stderr)
			require.ErrorIs(t, err, errUsage)
		})
	}
}

// TestRunShort runs the whole command briefly: the results table, the
// audit check and the stage breakdown all come out, and the profile is
// written.
func TestRunShort(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "cg.prof")
	var stdout, stderr bytes.Buffer
	// A long eval timeout: under -race a cold policy evaluation can take
	// more than the product's 50ms, which would deny the request.
	err := run(t.Context(), []string{"-duration", "300ms", "-warmup", "100ms", "-concurrency", "4",
		"-eval-timeout", "10s", "-stages", "-cpuprofile", prof}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	out := stdout.String()
	for _, want := range []string{"| upstream direct |", "| bare proxy |", "| ChartGuard |",
		"ChartGuard/bare throughput", "ChartGuard audit log:", "## CPU by stage", "| **total** |"} {
		assert.Contains(t, out, want)
	}
	assert.FileExists(t, prof)
}
