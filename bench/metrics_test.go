package bench

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP chartguard_requests_total Requests.
# TYPE chartguard_requests_total counter
chartguard_requests_total{action="read",outcome="success",status="200"} 80
chartguard_requests_total{action="search",outcome="success",status="200"} 20
chartguard_audit_fsync_seconds_sum 0.5
chartguard_audit_fsync_seconds_count 25
odd{label="a b}c"} 1.5e+00 1700000000000
`
	m, err := parseMetrics(strings.NewReader(text))
	require.NoError(t, err)
	assert.Equal(t, Metrics{"chartguard_requests_total": 100, "chartguard_audit_fsync_seconds_sum": 0.5,
		"chartguard_audit_fsync_seconds_count": 25, "odd": 1.5}, m)

	_, err = parseMetrics(strings.NewReader("broken_metric\n"))
	require.Error(t, err)
	_, err = parseMetrics(strings.NewReader("bad{} x\n"))
	require.Error(t, err)
}

func TestWriteInternals(t *testing.T) {
	before := Metrics{"chartguard_audit_fsync_seconds_count": 10, "chartguard_audit_fsync_seconds_sum": 0.01,
		"chartguard_audit_events_written_total": 100}
	after := Metrics{"chartguard_audit_fsync_seconds_count": 110, "chartguard_audit_fsync_seconds_sum": 0.11,
		"chartguard_audit_events_written_total": 1100, "chartguard_requests_total": 1000}
	var out bytes.Buffer
	require.NoError(t, WriteInternals(&out, before, after))
	s := out.String()
	assert.Contains(t, s, "| audit events per fsync (group commit) | 10.0 |")
	assert.Contains(t, s, "| audit fsync, mean | 1000 µs |")
	assert.Contains(t, s, "| policy evaluation, mean wall time | — |")
}
