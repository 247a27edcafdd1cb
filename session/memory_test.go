package session

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testSession(t *testing.T, clk *clock, sub string) *Session {
	t.Helper()
	id, err := newSecret(rand.Reader)
	require.NoError(t, err)
	ident := alice()
	ident.Subject = sub
	now := clk.Now()
	return &Session{ID: id, Identity: ident, CreatedAt: now, LastActivity: now,
		ExpiresAt: now.Add(time.Hour), IdleRetention: 10 * time.Minute}
}

func TestMemoryCRUD(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m := NewMemory(clk.Now)
	s := testSession(t, clk, "alice")
	require.NoError(t, m.Create(ctx, s))
	require.ErrorIs(t, m.Create(ctx, s), ErrExists)

	got, err := m.Get(ctx, s.ID)
	require.NoError(t, err)
	assert.Equal(t, s, got)

	// Changes to returned copies never reach the store.
	got.Identity.Roles[0] = "admin"
	got.LastActivity = time.Time{}
	again, err := m.Get(ctx, s.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{"physician"}, again.Identity.Roles)
	assert.Equal(t, s.LastActivity, again.LastActivity)

	later := clk.Now().Add(time.Minute)
	require.NoError(t, m.Touch(ctx, s.ID, later))
	require.NoError(t, m.Touch(ctx, s.ID, later.Add(-30*time.Second)), "older activity is accepted but ignored")
	again, err = m.Get(ctx, s.ID)
	require.NoError(t, err)
	assert.Equal(t, later, again.LastActivity, "LastActivity never moves backwards")

	require.NoError(t, m.Delete(ctx, s.ID))
	_, err = m.Get(ctx, s.ID)
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, m.Delete(ctx, s.ID), "deleting twice is fine")
	require.ErrorIs(t, m.Touch(ctx, s.ID, later), ErrNotFound, "Touch never recreates")
	_, err = m.Get(ctx, s.ID)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestMemoryCreateRejectsInvalid(t *testing.T) {
	clk := newClock()
	m := NewMemory(clk.Now)
	tests := map[string]func(s *Session){
		"malformed id": func(s *Session) { s.ID = "short" },
		"no issuer":    func(s *Session) { s.Identity.Issuer = "" },
		"no subject":   func(s *Session) { s.Identity.Subject = "" },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			s := testSession(t, clk, "alice")
			mutate(s)
			require.ErrorIs(t, m.Create(t.Context(), s), ErrInvalid)
			assert.Zero(t, m.Len())
		})
	}
	require.ErrorIs(t, m.Create(t.Context(), nil), ErrInvalid)
}

func TestMemoryExpiry(t *testing.T) {
	tests := []struct {
		name    string
		advance time.Duration
		touch   time.Duration // activity this long after creation; 0 = none
		gone    bool
	}{
		{"fresh", 9 * time.Minute, 0, false},
		{"idle retention passed", 10 * time.Minute, 0, true},
		{"touched keeps it", 15 * time.Minute, 6 * time.Minute, false},
		{"absolute bound passed despite activity", time.Hour, 55 * time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			clk := newClock()
			m := NewMemory(clk.Now)
			s := testSession(t, clk, "alice")
			require.NoError(t, m.Create(ctx, s))
			if tt.touch > 0 {
				require.NoError(t, m.Touch(ctx, s.ID, s.CreatedAt.Add(tt.touch)))
			}
			clk.Advance(tt.advance)
			_, err := m.Get(ctx, s.ID)
			if !tt.gone {
				require.NoError(t, err)
				assert.Equal(t, 1, m.Len())
				return
			}
			require.ErrorIs(t, err, ErrNotFound)
			assert.Zero(t, m.Len(), "Get drops the expired entry")
		})
	}
}

func TestMemorySweepAndListUser(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	m := NewMemory(clk.Now)
	old := testSession(t, clk, "alice")
	require.NoError(t, m.Create(ctx, old))
	clk.Advance(5 * time.Minute)
	recent := testSession(t, clk, "alice")
	bob := testSession(t, clk, "bob")
	require.NoError(t, m.Create(ctx, recent))
	require.NoError(t, m.Create(ctx, bob))

	list, err := m.ListUser(ctx, "https://idp.example.org", "alice")
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, []string{old.ID, recent.ID}, []string{list[0].ID, list[1].ID}, "oldest first")

	other, err := m.ListUser(ctx, "https://other.example.org", "alice")
	require.NoError(t, err)
	assert.Empty(t, other, "a user is issuer+subject")

	assert.Zero(t, m.Sweep(clk.Now()))
	assert.Equal(t, 1, m.Sweep(clk.Now().Add(6*time.Minute)), "only the old session's retention passed")
	assert.Equal(t, 2, m.Len())
	assert.Equal(t, 2, m.Sweep(clk.Now().Add(time.Hour)))
	assert.Zero(t, m.Len())
	list, err = m.ListUser(ctx, "https://idp.example.org", "alice")
	require.NoError(t, err)
	assert.Empty(t, list)
	assert.Empty(t, m.byUser, "the user index empties with the sessions")
}
