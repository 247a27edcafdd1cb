package session

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// Defaults applied by [Config.SetDefaults].
const (
	DefaultStore           = "memory"
	DefaultIdleTimeout     = 15 * time.Minute
	DefaultAbsoluteTimeout = 12 * time.Hour
	DefaultActivityFlush   = 5 * time.Second
)

// SessionEndpoint is the proxy's session status endpoint. Polling it never
// counts as user activity: a page asking "how long until I am logged out?"
// must not keep the session alive.
const SessionEndpoint = "/.chartguard/session"

// maxPatternLen bounds a background pattern (and so the matching work).
const maxPatternLen = 1024

// Config configures sessions. Its YAML keys are the `session:` keys of
// DESIGN.md that this package implements; file, redis, key_file,
// max_sessions, on_limit and insecure_dev arrive with the file and redis
// stores.
type Config struct {
	// Store selects the session store. If empty, "memory"; "file" and
	// "redis" are not supported yet.
	Store string `yaml:"store"`
	// IdleTimeout ends a session after this long without user activity.
	// If zero, 15m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// AbsoluteTimeout ends a session this long after login, whatever the
	// activity. If zero, 12h.
	AbsoluteTimeout time.Duration `yaml:"absolute_timeout"`
	// ActivityFlush is how often pending activity is written to the store
	// (the caller runs [Manager.Flush] at this period). If zero, 5s.
	ActivityFlush time.Duration `yaml:"activity_flush"`
	// Background are path patterns of requests that never count as user
	// activity (auto-refresh, polling). "*" matches any run of characters,
	// "/" included; every other character matches itself. Each pattern
	// starts with "/".
	Background []string `yaml:"background"`
	// IdleTimeoutByNetwork overrides IdleTimeout for sessions whose login
	// address is in a network: the first matching entry wins.
	IdleTimeoutByNetwork []NetworkTimeout `yaml:"idle_timeout_by_network"`

	// Now is the clock. If nil, time.Now.
	Now func() time.Time `yaml:"-"`
	// Rand is the source of session ids and CSRF secrets. If nil,
	// crypto/rand.Reader. It must be a CSPRNG outside tests.
	Rand io.Reader `yaml:"-"`
}

// NetworkTimeout is one idle_timeout_by_network entry, e.g. a shorter idle
// timeout on shared ward workstations.
type NetworkTimeout struct {
	// CIDR is a network in canonical form ("10.20.0.0/16").
	CIDR string `yaml:"cidr"`
	// IdleTimeout applies to sessions that logged in from CIDR. Required.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// SetDefaults fills empty fields with their documented defaults.
func (c *Config) SetDefaults() {
	if c.Store == "" {
		c.Store = DefaultStore
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.AbsoluteTimeout == 0 {
		c.AbsoluteTimeout = DefaultAbsoluteTimeout
	}
	if c.ActivityFlush == 0 {
		c.ActivityFlush = DefaultActivityFlush
	}
}

// Validate reports every problem at once; each error names the YAML key and
// the fix. Empty fields are judged as [Config.SetDefaults] would fill them.
func (c Config) Validate() error {
	c.SetDefaults()
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	switch c.Store {
	case "memory":
	case "file", "redis":
		add("session.store: %q is not supported yet: use memory", c.Store)
	default:
		add("session.store: %q is unknown: use memory", c.Store)
	}
	if c.AbsoluteTimeout < 0 {
		add("session.absolute_timeout: %s is negative: use a positive duration such as 12h", c.AbsoluteTimeout)
	}
	checkIdle := func(key string, d time.Duration) {
		switch {
		case d <= 0:
			add("%s: %s is not positive: use a duration such as 15m", key, d)
		case c.AbsoluteTimeout > 0 && d > c.AbsoluteTimeout:
			add("%s: %s exceeds session.absolute_timeout (%s): shorten it", key, d, c.AbsoluteTimeout)
		case c.ActivityFlush > 0 && d <= c.ActivityFlush:
			add("%s: %s is not longer than session.activity_flush (%s): lengthen it or shorten activity_flush", key, d, c.ActivityFlush)
		}
	}
	checkIdle("session.idle_timeout", c.IdleTimeout)
	if c.ActivityFlush < 0 {
		add("session.activity_flush: %s is negative: use a positive duration such as 5s", c.ActivityFlush)
	}
	for i, p := range c.Background {
		if err := checkPattern(p); err != nil {
			add("session.background[%d]: %w", i, err)
		}
	}
	for i, n := range c.IdleTimeoutByNetwork {
		key := fmt.Sprintf("session.idle_timeout_by_network[%d]", i)
		if _, err := parseNetwork(n.CIDR); err != nil {
			add("%s.cidr: %w", key, err)
		}
		checkIdle(key+".idle_timeout", n.IdleTimeout)
	}
	return errors.Join(errs...)
}

func checkPattern(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q must start with \"/\" (a path pattern such as \"/api/poll*\")", p)
	case len(p) > maxPatternLen:
		return fmt.Errorf("pattern is longer than %d bytes: shorten it", maxPatternLen)
	}
	return nil
}

// parseNetwork accepts only canonical prefixes. Threat: "10.1.2.3/8" reads
// like one host but would cover a /8; refusing it makes the operator say
// what they mean.
func parseNetwork(cidr string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR: use a network such as 10.20.0.0/16", cidr)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 network: write the IPv4 network instead", cidr)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set: use %s", cidr, p.Masked())
	}
	return p, nil
}
