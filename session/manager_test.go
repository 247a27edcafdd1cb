package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingStore wraps Memory to count calls and inject Touch failures.
type countingStore struct {
	*Memory
	gets, touches atomic.Int64
	touchErr      atomic.Pointer[error]
}

func (c *countingStore) Get(ctx context.Context, id string) (*Session, error) {
	c.gets.Add(1)
	return c.Memory.Get(ctx, id)
}

func (c *countingStore) Touch(ctx context.Context, id string, at time.Time) error {
	c.touches.Add(1)
	if err := c.touchErr.Load(); err != nil {
		return *err
	}
	return c.Memory.Touch(ctx, id, at)
}

func newCountingManager(t *testing.T, clk *clock, cfg Config) (*Manager, *countingStore) {
	t.Helper()
	store := &countingStore{Memory: NewMemory(clk.Now)}
	cfg.Now = clk.Now
	m, err := NewManager(cfg, store)
	require.NoError(t, err)
	return m, store
}

func TestLookupTimeouts(t *testing.T) {
	type step struct {
		advance time.Duration // then Lookup
		path    string
		flush   bool // run Flush after the lookup
		want    error
	}
	const user = "/fhir/Patient/p1"
	every := func(d time.Duration, n int, path string) []step {
		s := make([]step, n)
		for i := range s {
			s[i] = step{advance: d, path: path, flush: i%2 == 0}
		}
		return s
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"within idle", []step{{advance: 15*time.Minute - time.Second}}},
		{"idle timeout", []step{{advance: 15 * time.Minute, want: ErrExpiredIdle}}},
		{"user activity extends", []step{
			{advance: 10 * time.Minute, path: user},
			{advance: 15*time.Minute - time.Second},
			{advance: time.Second, want: ErrExpiredIdle},
		}},
		{"activity survives a flush", []step{
			{advance: 10 * time.Minute, path: user, flush: true},
			{advance: 14 * time.Minute},
			{advance: time.Minute, want: ErrExpiredIdle},
		}},
		{"background request does not extend", []step{
			{advance: 10 * time.Minute, path: "/api/poll/inbox"},
			{advance: 5 * time.Minute, want: ErrExpiredIdle},
		}},
		{"session endpoint does not extend", []step{
			{advance: 10 * time.Minute, path: SessionEndpoint},
			{advance: 5 * time.Minute, want: ErrExpiredIdle},
		}},
		{"presenting the id alone does not extend", []step{
			{advance: 10 * time.Minute, path: ""},
			{advance: 5 * time.Minute, want: ErrExpiredIdle},
		}},
		{"absolute timeout despite activity", append(every(10*time.Minute, 71, user),
			step{advance: 10*time.Minute - time.Second, path: user},
			step{advance: time.Second, path: user, want: ErrExpiredAbsolute})},
		{"expired session is gone", []step{
			{advance: 15 * time.Minute, path: user, want: ErrExpiredIdle},
			{path: user, want: ErrNotFound},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			clk := newClock()
			m, _ := newTestManager(t, clk, Config{Background: []string{"/api/poll*"}})
			s, err := m.New(ctx, alice(), Login{})
			require.NoError(t, err)
			for i, st := range tt.steps {
				clk.Advance(st.advance)
				got, err := m.Lookup(ctx, s.ID, Activity{Path: st.path})
				if st.want != nil {
					require.ErrorIs(t, err, st.want, "step %d", i)
					assert.Nil(t, got)
				} else {
					require.NoError(t, err, "step %d", i)
					assert.Equal(t, s.ID, got.ID)
				}
				if st.flush {
					require.NoError(t, m.Flush(ctx))
				}
			}
		})
	}
}

func TestLookupReportsActivity(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m, _ := newTestManager(t, clk, Config{})
	s, err := m.New(ctx, alice(), Login{})
	require.NoError(t, err)
	clk.Advance(time.Minute)
	got, err := m.Lookup(ctx, s.ID, Activity{Path: "/chart"})
	require.NoError(t, err)
	assert.Equal(t, clk.Now(), got.LastActivity)
	clk.Advance(time.Minute)
	got, err = m.Lookup(ctx, s.ID, Activity{Path: SessionEndpoint})
	require.NoError(t, err)
	assert.Equal(t, clk.Now().Add(-time.Minute), got.LastActivity, "pending activity is visible before it is flushed")
}

func TestDeadlines(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m, _ := newTestManager(t, clk, Config{IdleTimeout: 30 * time.Minute, AbsoluteTimeout: time.Hour,
		IdleTimeoutByNetwork: []NetworkTimeout{{CIDR: "10.20.0.0/16", IdleTimeout: 5 * time.Minute}}})
	login := clk.Now()
	s, err := m.New(ctx, alice(), Login{})
	require.NoError(t, err)
	ward, err := m.New(ctx, alice(), Login{IP: "10.20.3.4"})
	require.NoError(t, err)

	clk.Advance(10 * time.Minute)
	got, err := m.Lookup(ctx, s.ID, Activity{Path: "/chart"})
	require.NoError(t, err)
	idle, abs := m.Deadlines(got)
	assert.Equal(t, login.Add(40*time.Minute), idle)
	assert.Equal(t, login.Add(time.Hour), abs)

	clk.Advance(25 * time.Minute)
	got, err = m.Lookup(ctx, s.ID, Activity{Path: "/chart"})
	require.NoError(t, err)
	idle, _ = m.Deadlines(got)
	assert.Equal(t, login.Add(time.Hour), idle, "the idle deadline never passes the absolute one")

	idle, _ = m.Deadlines(ward)
	assert.Equal(t, login.Add(5*time.Minute), idle, "per-network idle timeout")
}

func TestIdleTimeoutByNetwork(t *testing.T) {
	cfg := Config{IdleTimeoutByNetwork: []NetworkTimeout{
		{CIDR: "10.20.0.0/16", IdleTimeout: 5 * time.Minute}, // ward workstations
		{CIDR: "10.0.0.0/8", IdleTimeout: 30 * time.Minute},
		{CIDR: "2001:db8::/32", IdleTimeout: 2 * time.Minute},
	}}
	tests := []struct {
		ip   string
		idle time.Duration
	}{
		{"10.20.1.1", 5 * time.Minute},
		{"::ffff:10.20.1.1", 5 * time.Minute},
		{"10.21.1.1", 30 * time.Minute},
		{"2001:db8::1", 2 * time.Minute},
		{"192.168.1.1", 15 * time.Minute},
		{"", 15 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			ctx := t.Context()
			clk := newClock()
			m, _ := newTestManager(t, clk, cfg)
			s, err := m.New(ctx, alice(), Login{IP: tt.ip})
			require.NoError(t, err)
			clk.Advance(tt.idle - time.Second)
			_, err = m.Lookup(ctx, s.ID, Activity{})
			require.NoError(t, err, "one second before the idle timeout")
			clk.Advance(time.Second)
			_, err = m.Lookup(ctx, s.ID, Activity{})
			require.ErrorIs(t, err, ErrExpiredIdle)
		})
	}
}

func TestLookupRejectsUnknownIDs(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m, store := newCountingManager(t, clk, Config{})
	live, err := m.New(ctx, alice(), Login{})
	require.NoError(t, err)
	ended, err := m.New(ctx, alice(), Login{})
	require.NoError(t, err)
	require.NoError(t, m.End(ctx, ended.ID))
	revoked, err := m.New(ctx, alice(), Login{})
	require.NoError(t, err)
	require.NoError(t, store.Delete(ctx, revoked.ID))
	forged, err := newSecret(bytes.NewReader(bytes.Repeat([]byte{7}, 32)))
	require.NoError(t, err)

	tests := []struct {
		name      string
		id        string
		malformed bool
	}{
		{"empty", "", true},
		{"truncated", live.ID[:IDLen-1], true},
		{"extended", live.ID + "A", true},
		{"std base64", "+" + live.ID[1:], true},
		{"injection", "' OR 1=1 --" + live.ID[11:], true},
		{"forged", forged, false},
		{"ended", ended.ID, false},
		{"revoked", revoked.ID, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := store.gets.Load()
			got, err := m.Lookup(ctx, tt.id, Activity{Path: "/chart"})
			assert.Nil(t, got)
			require.ErrorIs(t, err, ErrNotFound)
			assert.Equal(t, tt.malformed, errors.Is(err, ErrMalformedID))
			if tt.malformed {
				assert.Equal(t, before, store.gets.Load(), "malformed ids never reach the store")
			}
		})
	}
	_, err = m.Lookup(ctx, live.ID, Activity{})
	require.NoError(t, err, "the live session is unaffected")
}

func TestNewIssuesFreshSessions(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m, store := newTestManager(t, clk, Config{})
	authTime := clk.Now().Add(-time.Hour)
	a, err := m.New(ctx, alice(), Login{AuthTime: authTime, IP: "::ffff:10.1.2.3", MFA: true, MFAMethod: "totp", MFATime: clk.Now()})
	require.NoError(t, err)
	b, err := m.New(ctx, alice(), Login{AuthTime: clk.Now().Add(time.Hour)})
	require.NoError(t, err)

	assert.True(t, ValidID(a.ID))
	assert.NotEqual(t, a.ID, b.ID, "every login gets a new id")
	assert.NotEqual(t, a.CSRFSecret, b.CSRFSecret)
	assert.NotEqual(t, a.ID, a.CSRFSecret)
	assert.Equal(t, clk.Now(), a.CreatedAt)
	assert.Equal(t, authTime, a.AuthTime)
	assert.Equal(t, clk.Now(), b.AuthTime, "an auth_time in the future is clamped to now")
	assert.Equal(t, "10.1.2.3", a.IP, "addresses are stored canonically")
	assert.Equal(t, clk.Now().Add(DefaultAbsoluteTimeout+2*DefaultActivityFlush+NoticeWindow), a.ExpiresAt,
		"the store keeps a session two flush periods and the notice window past its deadline")

	list, err := store.ListUser(ctx, "https://idp.example.org", "alice")
	require.NoError(t, err)
	assert.Len(t, list, 2, "a new login does not end the user's other sessions")

	// Changing the returned session does not change the stored one.
	a.Identity.Roles[0] = "admin"
	got, err := m.Lookup(ctx, a.ID, Activity{})
	require.NoError(t, err)
	assert.Equal(t, []string{"physician"}, got.Identity.Roles)
}

func TestNewRejects(t *testing.T) {
	clk := newClock()
	tests := []struct {
		name  string
		rand  []byte
		edit  func(l *Login)
		iss   string
		want  error
		match string
	}{
		{name: "no issuer", iss: "-", want: ErrInvalid},
		{name: "bad address", edit: func(l *Login) { l.IP = "10.1.2.3:443" }, want: ErrInvalid},
		{name: "random source fails", rand: []byte{1, 2, 3}, match: "read random"},
		{name: "random source repeats", rand: bytes.Repeat([]byte{9}, 32*4), want: ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Now: clk.Now}
			if tt.rand != nil {
				cfg.Rand = bytes.NewReader(tt.rand)
			}
			m, err := NewManager(cfg, NewMemory(clk.Now))
			require.NoError(t, err)
			ident := alice()
			if tt.iss == "-" {
				ident.Issuer = ""
			}
			var l Login
			if tt.edit != nil {
				tt.edit(&l)
			}
			s, err := m.New(t.Context(), ident, l)
			if tt.want == ErrExists {
				require.NoError(t, err, "first login")
				s, err = m.New(t.Context(), ident, l)
			}
			assert.Nil(t, s)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
			} else {
				require.ErrorContains(t, err, tt.match)
			}
		})
	}
}

func TestWriteBehind(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m, store := newCountingManager(t, clk, Config{})
	s, err := m.New(ctx, alice(), Login{})
	require.NoError(t, err)

	for range 10 { // 4s of activity, within one 5s flush period
		clk.Advance(400 * time.Millisecond)
		_, err := m.Lookup(ctx, s.ID, Activity{Path: "/chart"})
		require.NoError(t, err)
	}
	last := clk.Now()
	stored, err := store.Memory.Get(ctx, s.ID)
	require.NoError(t, err)
	assert.Equal(t, s.CreatedAt, stored.LastActivity, "activity is not written on the request path")
	assert.Zero(t, store.touches.Load())
	assert.Equal(t, 1, m.Pending())

	require.NoError(t, m.Flush(ctx))
	assert.Equal(t, int64(1), store.touches.Load(), "ten requests, one write")
	assert.Zero(t, m.Pending())
	stored, err = store.Memory.Get(ctx, s.ID)
	require.NoError(t, err)
	assert.Equal(t, last, stored.LastActivity)

	require.NoError(t, m.Flush(ctx))
	assert.Equal(t, int64(1), store.touches.Load(), "nothing pending, nothing written")
}

func TestStoreNeverLagsAFlushPeriod(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m, store := newCountingManager(t, clk, Config{}) // 15m idle, 5s flush
	s, err := m.New(ctx, alice(), Login{})
	require.NoError(t, err)
	// A clinician working for 20 minutes while Flush never runs: the
	// store's copy keeps up on its own, written at most every 5s.
	for range 20 * 60 {
		clk.Advance(time.Second)
		_, err := m.Lookup(ctx, s.ID, Activity{Path: "/chart"})
		require.NoError(t, err)
		stored, err := store.Memory.Get(ctx, s.ID)
		require.NoError(t, err)
		assert.Less(t, clk.Now().Sub(stored.LastActivity), DefaultActivityFlush)
	}
	assert.Equal(t, int64(20*60/5), store.touches.Load())
}

func TestWriteThroughFailure(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m, store := newCountingManager(t, clk, Config{})
	s, err := m.New(ctx, alice(), Login{})
	require.NoError(t, err)

	down := errors.New("store down")
	store.touchErr.Store(&down)
	clk.Advance(time.Minute)
	got, err := m.Lookup(ctx, s.ID, Activity{Path: "/chart"})
	require.NoError(t, err, "a failed activity write does not fail the request")
	assert.Equal(t, clk.Now(), got.LastActivity)
	assert.Equal(t, int64(1), store.touches.Load())
	assert.Equal(t, 1, m.Pending(), "it stays pending for Flush")

	notFound := fmt.Errorf("redis: %w", ErrNotFound) // revoked between Get and Touch
	store.touchErr.Store(&notFound)
	clk.Advance(time.Minute)
	_, err = m.Lookup(ctx, s.ID, Activity{Path: "/chart"})
	require.ErrorIs(t, err, ErrNotFound)
	assert.Zero(t, m.Pending())
}

func TestFlushFailureKeepsActivity(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m, store := newCountingManager(t, clk, Config{})
	s, err := m.New(ctx, alice(), Login{})
	require.NoError(t, err)
	clk.Advance(time.Second)
	_, err = m.Lookup(ctx, s.ID, Activity{Path: "/chart"})
	require.NoError(t, err)

	down := errors.New("store down")
	store.touchErr.Store(&down)
	require.ErrorIs(t, m.Flush(ctx), down)
	assert.Equal(t, 1, m.Pending(), "failed writes stay pending")

	store.touchErr.Store(nil)
	require.NoError(t, m.Flush(ctx))
	stored, err := store.Memory.Get(ctx, s.ID)
	require.NoError(t, err)
	assert.Equal(t, clk.Now(), stored.LastActivity)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	clk.Advance(time.Second)
	_, err = m.Lookup(ctx, s.ID, Activity{Path: "/chart"})
	require.NoError(t, err)
	require.ErrorIs(t, m.Flush(cancelled), context.Canceled)
	assert.Equal(t, 1, m.Pending())
}

func TestFlushNeverResurrects(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m, store := newTestManager(t, clk, Config{})
	s, err := m.New(ctx, alice(), Login{})
	require.NoError(t, err)
	clk.Advance(time.Minute)
	_, err = m.Lookup(ctx, s.ID, Activity{Path: "/chart"})
	require.NoError(t, err)
	require.NoError(t, store.Delete(ctx, s.ID)) // revoked by an admin meanwhile
	require.NoError(t, m.Flush(ctx))
	_, err = m.Lookup(ctx, s.ID, Activity{Path: "/chart"})
	require.ErrorIs(t, err, ErrNotFound)
	assert.Zero(t, store.Len())
}

func TestEnd(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m, _ := newTestManager(t, clk, Config{})
	s, err := m.New(ctx, alice(), Login{})
	require.NoError(t, err)
	_, err = m.Lookup(ctx, s.ID, Activity{Path: "/chart"})
	require.NoError(t, err)

	require.NoError(t, m.End(ctx, s.ID))
	assert.Zero(t, m.Pending(), "pending activity of an ended session is dropped")
	_, err = m.Lookup(ctx, s.ID, Activity{Path: "/chart"})
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, m.End(ctx, s.ID), "ending twice is fine")
	require.ErrorIs(t, m.End(ctx, "nope"), ErrMalformedID)
}

func TestConcurrentUse(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m, store := newTestManager(t, clk, Config{})
	const workers, rounds = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- worker(ctx, m, clk, w, rounds)
		}()
	}
	wg.Add(1)
	go func() { // the periodic jobs, run as fast as they can
		defer wg.Done()
		for range rounds {
			if err := m.Flush(ctx); err != nil {
				errs <- err
				return
			}
			store.Sweep(clk.Now())
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, m.Flush(ctx))
	assert.Equal(t, workers, store.Len(), "each worker kept exactly its last session")
}

// worker logs in, uses and logs out repeatedly, keeping its last session.
func worker(ctx context.Context, m *Manager, clk *clock, w, rounds int) error {
	ident := alice()
	ident.Subject = fmt.Sprintf("user-%d", w)
	var prev *Session
	for i := range rounds {
		s, err := m.New(ctx, ident, Login{IP: "10.0.0.1"})
		if err != nil {
			return err
		}
		clk.Advance(time.Millisecond)
		for range 3 {
			got, err := m.Lookup(ctx, s.ID, Activity{Path: "/fhir/Observation"})
			if err != nil {
				return fmt.Errorf("round %d: %w", i, err)
			}
			if got.Identity.Subject != ident.Subject {
				return fmt.Errorf("round %d: got another user's session", i)
			}
		}
		if prev != nil {
			if err := m.End(ctx, prev.ID); err != nil {
				return err
			}
		}
		prev = s
	}
	return nil
}
