package session

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

// clock is a settable fake clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func alice() chartguard.Identity {
	return chartguard.Identity{
		Issuer: "https://idp.example.org", Subject: "alice",
		Roles: []string{"physician"}, Groups: []string{"emr-physicians"},
	}
}

// newTestManager returns a manager over a memory store, both on clk.
func newTestManager(t testing.TB, clk *clock, cfg Config) (*Manager, *Memory) {
	t.Helper()
	store := NewMemory(clk.Now)
	cfg.Now = clk.Now
	m, err := NewManager(cfg, store)
	require.NoError(t, err)
	return m, store
}
