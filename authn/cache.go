package authn

import (
	"slices"
	"sync"
	"time"

	"github.com/chartguard/chartguard/chartguard"
)

const (
	// cacheMaxEntries bounds memory: about 10k principals of a few hundred
	// bytes each.
	cacheMaxEntries = 10_000
	// cacheMaxAge bounds how long a verification is reused (DESIGN.md
	// "Caches allowed on the hot path"): claims and key withdrawals are
	// re-read at least this often.
	cacheMaxAge = 5 * time.Minute
)

// tokenKey is the SHA-256 of a token. The cache never holds the token:
// a heap dump yields hashes, not credentials.
type tokenKey [32]byte

type cacheEntry struct {
	principal *chartguard.Principal // never handed out; callers get clones
	exp       time.Time             // the token's exp
	until     time.Time             // min(exp, verified + cacheMaxAge)
}

// tokenCache maps verified tokens to their principals. When full it
// evicts an arbitrary entry (Go map iteration order is randomised), which
// is simple and cannot be steered into evicting a chosen victim more than
// any other.
type tokenCache struct {
	mu      sync.RWMutex
	max     int
	entries map[tokenKey]cacheEntry
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[tokenKey]cacheEntry)}
}

// get returns the entry for k if it is still within its lifetime.
// Expired entries are dropped.
func (c *tokenCache) get(k tokenKey, now time.Time) (cacheEntry, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok {
		return cacheEntry{}, false
	}
	if !now.Before(e.until) {
		c.remove(k)
		return cacheEntry{}, false
	}
	return e, true
}

func (c *tokenCache) put(k tokenKey, e cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		for victim := range c.entries {
			delete(c.entries, victim)
			break
		}
	}
	c.entries[k] = e
}

func (c *tokenCache) remove(k tokenKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, k)
}

func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// clonePrincipal copies p so callers may modify what they get without
// touching the cached original.
func clonePrincipal(p *chartguard.Principal) *chartguard.Principal {
	cp := *p
	cp.Identity.Roles = slices.Clone(p.Identity.Roles)
	cp.Identity.Groups = slices.Clone(p.Identity.Groups)
	cp.Identity.PatientLinks = slices.Clone(p.Identity.PatientLinks)
	cp.Token.Scopes = slices.Clone(p.Token.Scopes)
	cp.Session.BreakGlass = slices.Clone(p.Session.BreakGlass)
	return &cp
}
