package session

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/chartguard/chartguard/chartguard"
)

// Manager issues, looks up and ends sessions on top of a [Store]: it owns
// the idle and absolute timeouts, decides which requests count as user
// activity, and writes activity to the store behind ([Manager.Flush]).
// It is safe for concurrent use and starts no goroutine.
type Manager struct {
	store      Store
	now        func() time.Time
	idle       time.Duration
	absolute   time.Duration
	flush      time.Duration
	background []string
	networks   []network

	randMu sync.Mutex // guards rand: an injected reader need not be concurrency-safe
	rand   io.Reader

	mu      sync.Mutex
	pending map[string]time.Time // id → newest activity not yet in the store
}

type network struct {
	prefix netip.Prefix
	idle   time.Duration
}

// Activity describes the request that presents a session.
type Activity struct {
	// Path is the normalised request path. A request counts as user
	// activity unless its path is empty, is [SessionEndpoint] or matches
	// a [Config.Background] pattern.
	Path string
}

// Login is what authentication established for a new session.
type Login struct {
	// AuthTime is the IdP's auth_time. If zero, the login time.
	AuthTime time.Time
	// MFA, MFAMethod and MFATime as in [Session].
	MFA       bool
	MFAMethod string
	MFATime   time.Time
	// IP is the client address; empty if unknown. It must parse as an IP.
	IP string
	// IDTokenHint is the IdP's ID token, kept for RP-initiated logout.
	IDTokenHint string
}

// NewManager validates cfg (after [Config.SetDefaults] on a copy) and
// returns a Manager over store.
// NoticeWindow is how long after a session ends Lookup still reports why
// (idle or absolute expiry) rather than ErrNotFound.
const NoticeWindow = time.Hour

func NewManager(cfg Config, store Store) (*Manager, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, fmt.Errorf("%w: no store", ErrInvalid)
	}
	m := &Manager{
		store:      store,
		now:        cfg.Now,
		rand:       cfg.Rand,
		idle:       cfg.IdleTimeout,
		absolute:   cfg.AbsoluteTimeout,
		flush:      cfg.ActivityFlush,
		background: append([]string(nil), cfg.Background...),
		pending:    make(map[string]time.Time),
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.rand == nil {
		m.rand = rand.Reader
	}
	for _, n := range cfg.IdleTimeoutByNetwork {
		p, _ := parseNetwork(n.CIDR) // validated above
		m.networks = append(m.networks, network{prefix: p, idle: n.IdleTimeout})
	}
	return m, nil
}

// New issues a fresh session for identity. Every login gets a new id, so
// an id planted before login (session fixation) is never promoted.
func (m *Manager) New(ctx context.Context, identity chartguard.Identity, l Login) (*Session, error) {
	if identity.Issuer == "" || identity.Subject == "" {
		return nil, fmt.Errorf("%w: identity needs an issuer and a subject", ErrInvalid)
	}
	ip, err := canonicalIP(l.IP)
	if err != nil {
		return nil, err
	}
	id, csrf, err := m.secrets()
	if err != nil {
		return nil, err
	}
	now := m.now()
	s := &Session{
		ID:           id,
		Identity:     identity,
		MFA:          l.MFA,
		MFAMethod:    l.MFAMethod,
		MFATime:      l.MFATime,
		CreatedAt:    now,
		AuthTime:     l.AuthTime,
		LastActivity: now,
		IP:           ip,
		IDTokenHint:  l.IDTokenHint,
		CSRFSecret:   csrf,
	}
	if s.AuthTime.IsZero() || s.AuthTime.After(now) {
		s.AuthTime = now
	}
	// The store's copy of LastActivity lags the Manager's by less than one
	// flush period (see writeThrough), so with two periods of retention the
	// store never forgets a session the Manager still holds live. A reload
	// that lengthens timeouts applies in full to new sessions only.
	// On top, the store keeps an ended session for NoticeWindow, so a
	// clinician who comes back within it is told they were logged off
	// (ErrExpiredIdle/ErrExpiredAbsolute), not sent to sign-in as if they
	// had never been here. The record is useless for access: Lookup
	// refuses it.
	s.IdleRetention = m.idleFor(s) + 2*m.flush + NoticeWindow
	// The same on the absolute bound.
	s.ExpiresAt = now.Add(m.absolute + 2*m.flush + NoticeWindow)
	// Threat: ErrExists means the random source repeated 256 bits, i.e.
	// it is broken. Choice: fail the login rather than retry.
	if err := m.store.Create(ctx, s); err != nil {
		return nil, fmt.Errorf("session: create: %w", err)
	}
	return s.Clone(), nil
}

func (m *Manager) secrets() (id, csrf string, err error) {
	m.randMu.Lock()
	defer m.randMu.Unlock()
	if id, err = newSecret(m.rand); err != nil {
		return "", "", err
	}
	if csrf, err = newSecret(m.rand); err != nil {
		return "", "", err
	}
	return id, csrf, nil
}

func canonicalIP(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	a, err := netip.ParseAddr(raw)
	if err != nil {
		return "", fmt.Errorf("%w: login address is not an IP", ErrInvalid)
	}
	return a.Unmap().WithZone("").String(), nil
}

// Lookup returns the session id names, as of now. Errors: ErrMalformedID
// (also an ErrNotFound) for ids that cannot be ours, checked before the
// store is asked; ErrNotFound for unknown, forged, ended or revoked ids;
// ErrExpiredAbsolute and ErrExpiredIdle for expired sessions, which are
// then deleted; anything else is a store failure.
//
// If act counts as user activity, the session's LastActivity becomes now:
// in memory at once, and in the store at the next [Manager.Flush] or, if
// the store's copy is a whole ActivityFlush old, on this call. Presenting
// the id alone (a background or status request) never extends the
// session.
func (m *Manager) Lookup(ctx context.Context, id string, act Activity) (*Session, error) {
	if !ValidID(id) {
		return nil, ErrMalformedID
	}
	s, err := m.store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("session: lookup: %w", err)
	}
	now := m.now()
	stored := s.LastActivity
	recorded, expired := m.check(s, now, m.countsAsActivity(act))
	if expired != nil {
		m.forget(id)
		if err := m.store.Delete(ctx, id); err != nil {
			return nil, errors.Join(expired, fmt.Errorf("session: delete expired: %w", err))
		}
		return nil, expired
	}
	if recorded && now.Sub(stored) >= m.flush {
		if err := m.writeThrough(ctx, id, now); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// writeThrough writes activity the store has lagged behind by a whole
// flush period, so the store's copy is never more than ActivityFlush old
// even if Flush falls behind, and the store never forgets a session the
// Manager still holds live. A store error leaves the activity pending for
// Flush to retry and report; a session deleted meanwhile is not found.
func (m *Manager) writeThrough(ctx context.Context, id string, at time.Time) error {
	err := m.store.Touch(ctx, id, at)
	if errors.Is(err, ErrNotFound) {
		m.forget(id)
		return err
	}
	if err == nil {
		m.mu.Lock()
		if p, ok := m.pending[id]; ok && !p.After(at) {
			delete(m.pending, id)
		}
		m.mu.Unlock()
	}
	return nil
}

// check decides expiry with the pending activity merged in, and records
// new activity, in one critical section. It updates s.LastActivity and
// reports whether it recorded activity.
func (m *Manager) check(s *Session, now time.Time, active bool) (recorded bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.pending[s.ID]; ok && p.After(s.LastActivity) {
		s.LastActivity = p
	}
	// The absolute timeout counts from the login at ChartGuard, not the
	// IdP's auth_time. Threat: a long IdP SSO session keeps re-issuing
	// sessions without a password. Choice: counting from auth_time would
	// instead trap users in a login loop once their IdP authentication is
	// older than absolute_timeout. Accepted risk: re-authentication is
	// bounded by the IdP's session (or oidc.max_age), not by us.
	if !now.Before(s.CreatedAt.Add(m.absolute)) {
		return false, ErrExpiredAbsolute
	}
	if !now.Before(s.LastActivity.Add(m.idleFor(s))) {
		return false, ErrExpiredIdle
	}
	if !active || !now.After(s.LastActivity) {
		return false, nil
	}
	s.LastActivity = now
	m.pending[s.ID] = now
	return true, nil
}

// Deadlines returns when s ends unless more user activity comes: its idle
// deadline (never after the absolute one) and its absolute deadline. Pass
// a session returned by [Manager.Lookup], whose LastActivity includes
// pending activity. The session endpoint reports them as idle_expires_in
// and expires_in.
func (m *Manager) Deadlines(s *Session) (idle, absolute time.Time) {
	absolute = s.CreatedAt.Add(m.absolute)
	idle = s.LastActivity.Add(m.idleFor(s))
	if idle.After(absolute) {
		idle = absolute
	}
	return idle, absolute
}

// idleFor is the idle timeout of s: the first network containing its login
// address, else the default.
func (m *Manager) idleFor(s *Session) time.Duration {
	if len(m.networks) == 0 || s.IP == "" {
		return m.idle
	}
	a, err := netip.ParseAddr(s.IP)
	if err != nil {
		return m.idle
	}
	a = a.Unmap()
	for _, n := range m.networks {
		if n.prefix.Contains(a) {
			return n.idle
		}
	}
	return m.idle
}

func (m *Manager) countsAsActivity(act Activity) bool {
	if act.Path == "" || act.Path == SessionEndpoint {
		return false
	}
	for _, p := range m.background {
		if matchGlob(p, act.Path) {
			return false
		}
	}
	return true
}

// End ends the session (logout). Ending an absent session is not an error.
func (m *Manager) End(ctx context.Context, id string) error {
	if !ValidID(id) {
		return ErrMalformedID
	}
	m.forget(id)
	if err := m.store.Delete(ctx, id); err != nil {
		return fmt.Errorf("session: end: %w", err)
	}
	return nil
}

func (m *Manager) forget(id string) {
	m.mu.Lock()
	delete(m.pending, id)
	m.mu.Unlock()
}

// Pending returns how many sessions have activity not yet written to the
// store.
func (m *Manager) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
}

// Flush writes pending activity to the store. Run it every
// [Config.ActivityFlush]: other replicas see activity up to that much late
// and may end an idle session that much early (the safe direction). If it
// falls behind, [Manager.Lookup] writes activity through once the store's
// copy is a whole ActivityFlush old. Sessions that ended meanwhile are
// skipped, never recreated. Entries that fail to write stay pending for the
// next Flush.
func (m *Manager) Flush(ctx context.Context) error {
	m.mu.Lock()
	batch := m.pending
	m.pending = make(map[string]time.Time, len(batch))
	m.mu.Unlock()

	var failed map[string]time.Time
	var firstErr error
	for id, at := range batch {
		err := ctx.Err()
		if err == nil {
			err = m.store.Touch(ctx, id, at)
		}
		if err == nil || errors.Is(err, ErrNotFound) {
			continue
		}
		if firstErr == nil {
			firstErr = err
		}
		if failed == nil {
			failed = make(map[string]time.Time)
		}
		failed[id] = at
	}
	if failed == nil {
		return nil
	}
	m.mu.Lock()
	for id, at := range failed {
		if cur, ok := m.pending[id]; !ok || at.After(cur) {
			m.pending[id] = at
		}
	}
	m.mu.Unlock()
	return fmt.Errorf("session: flush: %d of %d not written: %w", len(failed), len(batch), firstErr)
}
