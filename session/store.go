package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Errors. Match them with [errors.Is]; stores and the [Manager] may wrap
// them.
var (
	// ErrNotFound: no such session (unknown, forged, ended or revoked).
	ErrNotFound = errors.New("session: not found")
	// ErrMalformedID: the presented id is not a well-formed session id.
	// It is also an [ErrNotFound], so callers that only ask "is there a
	// session?" need not tell the two apart.
	ErrMalformedID = fmt.Errorf("%w: malformed id", ErrNotFound)
	// ErrExists: Create was given an id that is already stored.
	ErrExists = errors.New("session: id already exists")
	// ErrExpiredIdle: the session saw no user activity for its idle timeout.
	ErrExpiredIdle = errors.New("session: idle timeout")
	// ErrExpiredAbsolute: the session outlived the absolute timeout.
	ErrExpiredAbsolute = errors.New("session: absolute timeout")
	// ErrInvalid: a session or login is missing what it needs.
	ErrInvalid = errors.New("session: invalid")
)

// Store keeps sessions. Implementations are safe for concurrent use, hand
// out copies (a caller's changes never reach the store except through these
// methods) and may forget a session once its [Session.ExpiresAt] or
// [Session.IdleRetention] bound has passed. A store never decides expiry
// for the caller beyond forgetting: the [Manager] does.
type Store interface {
	// Create stores a new session; ErrExists if the id is taken.
	Create(ctx context.Context, s *Session) error
	// Get returns a copy of the session, or ErrNotFound.
	Get(ctx context.Context, id string) (*Session, error)
	// Touch records user activity at `at`. LastActivity never moves
	// backwards. ErrNotFound if the session is gone: Touch never creates.
	Touch(ctx context.Context, id string, at time.Time) error
	// Delete removes the session. Deleting an absent session is not an
	// error: logout, revocation and expiry race with each other.
	Delete(ctx context.Context, id string) error
	// ListUser returns copies of the user's live sessions, oldest first.
	ListUser(ctx context.Context, iss, sub string) ([]*Session, error)
}

// userKey names a user in indexes: iss+sub, never email or name.
type userKey struct{ iss, sub string }

// Memory is an in-process [Store]: a map behind a mutex. Sessions do not
// survive a restart and are not shared between replicas. Expired entries
// are dropped lazily by Get and ListUser, and all at once by
// [Memory.Sweep], which the caller runs periodically; Memory starts no
// goroutine.
type Memory struct {
	now func() time.Time

	mu     sync.RWMutex
	byID   map[string]*Session
	byUser map[userKey]map[string]struct{}
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty memory store. now is the clock for lazy
// expiry; if nil, time.Now.
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{
		now:    now,
		byID:   make(map[string]*Session),
		byUser: make(map[userKey]map[string]struct{}),
	}
}

// storeExpired reports whether a store may forget s at now.
func storeExpired(s *Session, now time.Time) bool {
	if !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt) {
		return true
	}
	return s.IdleRetention > 0 && !now.Before(s.LastActivity.Add(s.IdleRetention))
}

// Create implements [Store].
func (m *Memory) Create(_ context.Context, s *Session) error {
	if s == nil || !ValidID(s.ID) || s.Identity.Issuer == "" || s.Identity.Subject == "" {
		return fmt.Errorf("%w: session needs a well-formed id, an issuer and a subject", ErrInvalid)
	}
	c := s.Clone()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byID[c.ID]; ok {
		return ErrExists
	}
	m.byID[c.ID] = c
	k := userKey{c.Identity.Issuer, c.Identity.Subject}
	if m.byUser[k] == nil {
		m.byUser[k] = make(map[string]struct{})
	}
	m.byUser[k][c.ID] = struct{}{}
	return nil
}

// Get implements [Store].
func (m *Memory) Get(_ context.Context, id string) (*Session, error) {
	now := m.now()
	m.mu.RLock()
	s, ok := m.byID[id]
	expired := ok && storeExpired(s, now)
	var c *Session
	if ok && !expired {
		c = s.Clone()
	}
	m.mu.RUnlock()
	if expired {
		m.mu.Lock()
		if s, ok := m.byID[id]; ok && storeExpired(s, now) {
			m.removeLocked(s)
		}
		m.mu.Unlock()
	}
	if c == nil {
		return nil, ErrNotFound
	}
	return c, nil
}

// Touch implements [Store].
func (m *Memory) Touch(_ context.Context, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.byID[id]
	if !ok || storeExpired(s, m.now()) {
		return ErrNotFound
	}
	if at.After(s.LastActivity) {
		s.LastActivity = at
	}
	return nil
}

// Delete implements [Store].
func (m *Memory) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.byID[id]; ok {
		m.removeLocked(s)
	}
	return nil
}

// ListUser implements [Store].
func (m *Memory) ListUser(_ context.Context, iss, sub string) ([]*Session, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Session
	for id := range m.byUser[userKey{iss, sub}] {
		s := m.byID[id]
		if storeExpired(s, now) {
			m.removeLocked(s)
			continue
		}
		out = append(out, s.Clone())
	}
	sortOldestFirst(out)
	return out, nil
}

// Sweep forgets every session whose store bound has passed at now and
// returns how many it forgot. Run it periodically (every minute is plenty):
// until then expired sessions cost memory, not security, because every
// lookup checks expiry.
func (m *Memory) Sweep(now time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, s := range m.byID {
		if storeExpired(s, now) {
			m.removeLocked(s)
			n++
		}
	}
	return n
}

// Len returns the number of stored sessions, expired ones included until
// they are swept.
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.byID)
}

func (m *Memory) removeLocked(s *Session) {
	delete(m.byID, s.ID)
	k := userKey{s.Identity.Issuer, s.Identity.Subject}
	if ids := m.byUser[k]; ids != nil {
		delete(ids, s.ID)
		if len(ids) == 0 {
			delete(m.byUser, k)
		}
	}
}

// sortOldestFirst orders sessions by CreatedAt, ties by id, so "evict the
// oldest" (next issue) is deterministic.
func sortOldestFirst(ss []*Session) {
	slices.SortFunc(ss, func(a, b *Session) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
