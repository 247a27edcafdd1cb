package e2e

import (
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/audit"
	"github.com/chartguard/chartguard/proxy"
)

// fullDisk is a segment file whose writes fail with ENOSPC while full is set
// — what a filled audit volume does.
type fullDisk struct {
	f    *os.File
	full *atomic.Bool
}

func (d fullDisk) WriteAt(b []byte, off int64) (int, error) {
	if d.full.Load() {
		return 0, &os.PathError{Op: "write", Path: d.f.Name(), Err: syscall.ENOSPC}
	}
	return d.f.WriteAt(b, off)
}

func (d fullDisk) Truncate(size int64) error { return d.f.Truncate(size) }

func (d fullDisk) Sync() error {
	if d.full.Load() {
		return &os.PathError{Op: "sync", Path: d.f.Name(), Err: syscall.ENOSPC}
	}
	return d.f.Sync()
}

func (d fullDisk) Close() error { return d.f.Close() }

// TestAuditDiskFullFailsClosed: with the audit volume full, patient data
// stops with 503 and the failure is counted; when space returns, requests
// succeed again and the refused request's event reaches the log (lost = 0).
func TestAuditDiskFullFailsClosed(t *testing.T) {
	full := &atomic.Bool{}
	e := startEnv(t, envOptions{mutate: func(c *proxy.Config) {
		c.Audit.OpenSegment = func(path string) (audit.SegmentFile, error) {
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				return nil, err
			}
			return fullDisk{f, full}, nil
		}
	}})
	tok := e.token(t, "physician", "doc-1")
	status, body, _ := e.call(t, "GET", "/fhir/Patient/p1", tok, nil, nil)
	require.Equal(t, 200, status, body)

	full.Store(true)
	status, body, h := e.call(t, "GET", "/fhir/Patient/p6", tok, nil, nil)
	assert.Equal(t, http.StatusServiceUnavailable, status, body)
	assert.Contains(t, body, "audit log cannot be written")
	refusedID := h.Get("X-Request-Id")
	status, _, _ = e.call(t, "GET", "/fhir/Patient/p10", tok, nil, nil)
	assert.Equal(t, http.StatusServiceUnavailable, status, "stays closed while the disk is full")
	assert.Positive(t, e.metric(t, "chartguard_audit_events_failed_total"))
	ready, _ := http.Get(e.AdminURL + "/readyz")
	ready.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, ready.StatusCode, "readyz drains the replica")

	full.Store(false)
	status, body, _ = e.call(t, "GET", "/fhir/Patient/p13", tok, nil, nil)
	assert.Equal(t, 200, status, body)
	ready, _ = http.Get(e.AdminURL + "/readyz")
	ready.Body.Close()
	assert.Equal(t, http.StatusOK, ready.StatusCode)
	assert.Zero(t, e.metric(t, "chartguard_audit_events_lost_total"))

	e.stop()
	ev := lastEventWithID(t, e, refusedID)
	assert.Equal(t, 503, ev.Request.Status)
	assert.Equal(t, "error", ev.Outcome)
	var statuses []int
	for _, ev := range e.events(t) {
		statuses = append(statuses, ev.Request.Status)
	}
	assert.ElementsMatch(t, []int{200, 503, 503, 200}, statuses, "every request has its event, none twice")
}

// TestAuditDevFull uses the kernel's /dev/full as the segment file: a real
// ENOSPC from a real write, not a simulated one.
func TestAuditDevFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("/dev/full not present on this system")
	}
	e := startEnv(t, envOptions{mutate: func(c *proxy.Config) {
		c.Audit.OpenSegment = func(string) (audit.SegmentFile, error) {
			return os.OpenFile("/dev/full", os.O_WRONLY, 0)
		}
	}})
	tok := e.token(t, "physician", "doc-1")
	// The first write discovers the full disk: the EMR answered, but the
	// answer is withheld (503) because its event could not be written.
	status, body, _ := e.call(t, "GET", "/fhir/Patient/p1", tok, nil, nil)
	assert.Equal(t, http.StatusServiceUnavailable, status, body)
	assert.NotContains(t, body, "Patient\",\"id\"", "no patient data in the refusal")
	// From then on patient requests stop before the EMR.
	before := len(e.upstreamSaw())
	status, _, _ = e.call(t, "GET", "/fhir/Patient/p6", tok, nil, nil)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Len(t, e.upstreamSaw(), before, "nothing reaches the EMR while the log cannot be written")
	assert.Positive(t, e.metric(t, "chartguard_audit_events_failed_total"))
}
