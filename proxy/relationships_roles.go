package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// A clinician's PractitionerRoles. The IdP's fhirUser names a
// Practitioner, but an EMR may name the clinician in a CareTeam, an
// Encounter or as generalPractitioner by one of their PractitionerRoles
// (US Core allows either, and role-based EMRs use the role). So for a
// Practitioner the lookups ask, and match, the Practitioner and their
// current PractitionerRoles:
//
//	PractitionerRole?practitioner=<user>   (once per user, cached)
//	CareTeam?participant=<user>,PractitionerRole/<r1>,...&patient=...
//
// A user whose fhirUser is a PractitionerRole is asked for as that role
// only.

// relMaxRoles bounds the roles of one user that lookups ask for (they go
// in the query string).
const relMaxRoles = 16

// who is the references that name one user in the EMR.
type who []string

func (w who) names(ref string) bool { return slices.Contains(w, ref) }

func (w who) String() string { return strings.Join(w, ",") }

// identities returns who user is in the EMR: user and, for a Practitioner,
// their active PractitionerRoles, cached for ttl (negative_ttl when there
// are none); concurrent callers for one user share one search. An EMR
// that cannot answer the search (a 4xx: no PractitionerRole, or the
// service identity may not read it) gives no roles, which only narrows
// what relates the user; other failures are errors, and the lookup then
// denies.
func (r *relationships) identities(ctx context.Context, requestID, user string) (who, error) {
	if !strings.HasPrefix(user, "Practitioner/") {
		return who{user}, nil
	}
	now := r.now()
	f, first := r.roles.join(user, now)
	if !first {
		select {
		case <-f.done:
			return f.who, f.err
		case <-ctx.Done():
			return nil, errRelTimeout
		}
	}
	f.who, f.err = r.searchRoles(ctx, requestID, user, now)
	ttl := r.ttl
	if len(f.who) == 1 {
		ttl = r.negTTL
	}
	r.roles.finish(user, f, now.Add(ttl))
	return f.who, f.err
}

func (r *relationships) searchRoles(ctx context.Context, requestID, user string, now time.Time) (who, error) {
	entries, err := r.search(ctx, requestID, "PractitionerRole", url.Values{"practitioner": {user}, "_count": {"50"}})
	var se *searchStatusError
	switch {
	case errors.As(err, &se) && se.status >= 400 && se.status < 500 && se.status != http.StatusTooManyRequests:
		return who{user}, nil
	case err != nil:
		return nil, err
	}
	return append(who{user}, r.rolesOf(entries, user, now)...), nil
}

// rolesOf returns the references of the active PractitionerRoles in
// entries that belong to user (at most relMaxRoles), checked here, not
// trusted to the search.
func (r *relationships) rolesOf(entries []json.RawMessage, user string, now time.Time) []string {
	var out []string
	for _, raw := range entries {
		var pr struct {
			ResourceType string    `json:"resourceType"`
			ID           string    `json:"id"`
			Active       *bool     `json:"active"`
			Practitioner reference `json:"practitioner"`
			Period       period    `json:"period"`
		}
		if json.Unmarshal(raw, &pr) != nil || pr.ResourceType != "PractitionerRole" || !fhirID.MatchString(pr.ID) ||
			(pr.Active != nil && !*pr.Active) || r.localRef(pr.Practitioner.Reference) != user {
			continue
		}
		if !pr.Period.current(now) {
			continue
		}
		if ref := "PractitionerRole/" + pr.ID; !slices.Contains(out, ref) && len(out) < relMaxRoles {
			out = append(out, ref)
		}
	}
	return out
}

// roleCache holds the identities of users, for at most relCacheSize of
// them (all are dropped when it is full: it refills from the EMR), and
// the searches under way.
type roleCache struct {
	mu      sync.Mutex
	m       map[string]roleEntry
	flights map[string]*roleFlight
}

type roleEntry struct {
	who     who
	expires time.Time
}

// roleFlight is a search under way, or its cached answer (done closed).
type roleFlight struct {
	done chan struct{}
	who  who
	err  error
}

// join returns the answer for user: cached or under way (first false), or
// a new flight the caller must search for and finish (first true).
func (c *roleCache) join(user string, now time.Time) (f *roleFlight, first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[user]; ok && now.Before(e.expires) {
		f = &roleFlight{done: make(chan struct{}), who: e.who}
		close(f.done)
		return f, false
	}
	if f, ok := c.flights[user]; ok {
		return f, false
	}
	if c.flights == nil {
		c.flights = map[string]*roleFlight{}
	}
	f = &roleFlight{done: make(chan struct{})}
	c.flights[user] = f
	return f, true
}

// expires is when user's cached roles expire, if there are any: an
// answer computed without roles does not depend on them.
func (c *roleCache) expires(user string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[user]
	return e.expires, ok && len(e.who) > 1
}

// finish ends f, caching its answer until expires unless it failed.
func (c *roleCache) finish(user string, f *roleFlight, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.flights, user)
	if f.err == nil {
		if c.m == nil || len(c.m) >= relCacheSize {
			c.m = map[string]roleEntry{}
		}
		c.m[user] = roleEntry{f.who, expires}
	}
	close(f.done)
}

// searchStatusError: a search answered with a status other than 200.
type searchStatusError struct {
	typ    string
	status int
}

func (e *searchStatusError) Error() string {
	return fmt.Sprintf("%s: %s search answered %d", errRelUpstream, e.typ, e.status)
}

func (e *searchStatusError) Unwrap() error { return errRelUpstream }
