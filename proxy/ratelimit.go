package proxy

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/chartguard/chartguard/authn"
)

// unauthenticated answers a request without valid credentials: 401 with
// WWW-Authenticate, or — above limits.unauthenticated_rps for the client's
// address — 429, audited as one aggregated event per address per
// audit.aggregate_interval (its count is the number of requests).
//
// Security: the threat is credential stuffing and audit flooding; the cap is
// per address, so a distributed attacker still produces one event per
// address per interval. Authenticated traffic is never limited here.
func (p *Proxy) unauthenticated(w http.ResponseWriter, x *exchange, err error) {
	if errors.Is(err, authn.ErrUnavailable) {
		// Not the caller's fault: the IdP's keys cannot be had. Fail closed.
		p.log.Warn("identity provider unavailable", "request_id", x.requestID)
		p.respond(w, x, apiProblem{status: http.StatusServiceUnavailable, code: "transient",
			message: "the identity provider cannot be reached", header: http.Header{"Retry-After": {"5"}}})
		return
	}
	if p.throttled(w, x) {
		return
	}
	p.respond(w, x, apiProblem{status: http.StatusUnauthorized, code: "login",
		message: "authentication required", header: http.Header{"WWW-Authenticate": {authn.WWWAuthenticate(err)}}})
}

// unauthLimiter keeps a token bucket and a pending aggregate per address.
type unauthLimiter struct {
	rps float64

	mu      sync.Mutex
	buckets map[string]*bucket
	pending map[string]*aggregate
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

type aggregate struct {
	first *exchange
	count int
}

func newUnauthLimiter(rps float64) *unauthLimiter {
	return &unauthLimiter{rps: rps, buckets: map[string]*bucket{}, pending: map[string]*aggregate{}}
}

func (l *unauthLimiter) allow(ip string, now time.Time) bool {
	if l.rps <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[ip]
	if b == nil {
		burst := max(1, int(l.rps))
		b = &bucket{lim: rate.NewLimiter(rate.Limit(l.rps), burst)}
		l.buckets[ip] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

func (l *unauthLimiter) add(x *exchange) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.pending[x.ip]
	if a == nil {
		a = &aggregate{first: x}
		l.pending[x.ip] = a
	}
	a.count++
}

// take returns and clears the pending aggregates, and forgets buckets idle
// for more than a minute.
func (l *unauthLimiter) take(now time.Time) []*aggregate {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*aggregate, 0, len(l.pending))
	for ip, a := range l.pending {
		out = append(out, a)
		delete(l.pending, ip)
	}
	for ip, b := range l.buckets {
		if now.Sub(b.seen) > time.Minute {
			delete(l.buckets, ip)
		}
	}
	return out
}

// flushAggregates writes one event per address with pending 429s.
func (p *Proxy) flushAggregates(ctx context.Context) {
	for _, a := range p.limiter.take(p.now()) {
		ev := p.event(a.first, http.StatusTooManyRequests, -1)
		ev.Count = a.count
		if err := p.audit.Commit(ctx, ev); err != nil {
			p.audit.Defer(ev)
		}
		p.metrics.requests.WithLabelValues(ev.Action, ev.Outcome, "429").Add(float64(a.count))
	}
}

// runAggregator flushes every interval until ctx ends, then once more.
func (p *Proxy) runAggregator(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			p.flushAggregates(context.WithoutCancel(ctx))
			return
		case <-t.C:
			p.flushAggregates(ctx)
		}
	}
}

// throttled answers 429 when the client's address is over
// limits.unauthenticated_rps; its event joins the address's aggregate.
// Unauthenticated requests (401s, sign-in redirects, sign-in starts) all
// count, so nobody can fill the audit log or the pending sign-ins.
func (p *Proxy) throttled(w http.ResponseWriter, x *exchange) bool {
	if p.limiter.allow(x.ip, p.now()) {
		return false
	}
	p.metrics.rateLimited.Inc()
	p.limiter.add(x)
	x.committed = true // its event is the aggregate's
	writeOutcome(w, apiProblem{status: http.StatusTooManyRequests, code: "throttled",
		message: "too many unauthenticated requests", header: http.Header{"Retry-After": {"1"}}}, x.requestID)
	return true
}
