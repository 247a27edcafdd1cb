package proxy

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/policy"
	"github.com/chartguard/chartguard/proxy/internal/fhirscan"
)

// Live care relationships (policy.relationships.source: fhir). Before the
// policy decides a resource whose patients are known (request phase,
// proven writes, batch entries, and every resource of a response), for a
// user whose fhir_user is a Practitioner or PractitionerRole, ChartGuard
// asks the EMR as its service identity (the forwarder's transport: TLS and
// upstream.auth) who the user is (a Practitioner's PractitionerRoles, see
// identities), then four reads in parallel per (user, patient), where
// <user> is the user and their roles:
//
//	CareTeam?participant=<user>&patient=Patient/<p>&status=active        -> care_team
//	Encounter?participant=<user>&patient=Patient/<p>&date=ge<now-lookback> -> encounter_days_ago
//	Patient/<p> (generalPractitioner)                                    -> pcp
//	Encounter?patient=Patient/<p>&status=in-progress (serviceProvider)   -> department
//
// and passes the answer in input.relationship, so the policy stays pure.
// department is the patient's current department: the id of the
// Organization providing their in-progress Encounter, whoever takes part.
// Answers are cached per (user, patient) for policy.relationships.ttl, and
// answers that name no care team, PCP or encounter for negative_ttl.
//
// A relationship that cannot be established — the EMR times out
// (policy.relationships.timeout), fails, answers something that is not a
// FHIR search Bundle, or the request needs more lookups than one request
// may make — denies the resource without asking the policy, with the
// reason [reasonRelationship] (fail closed). The policy cannot tell a
// missing relationship from an unknown one, so the proxy must not let it.
//
// Bounds: a request makes at most [relMaxLookups] upstream lookups (cache
// hits are free), [relWorkers] at a time; a response naming more uncached
// patients than that withholds the resources of the rest (document order)
// with the same reason, and the client pages with a smaller _count or asks
// again once the first answers are cached. Concurrent lookups of the same
// (user, patient) share one fetch. The cache holds at most [relCacheSize]
// pairs (least recently used evicted first) and is never logged: its keys
// pair a user with a patient.

const (
	// reasonRelationship is the decision reason, word for word in the
	// audit event and the 403, when a relationship cannot be established.
	reasonRelationship = "care relationship could not be checked"
	relWorkers         = 8
	relMaxLookups      = 64
	// relMaxFetches bounds the lookups asking the EMR at once, across all
	// requests (each sends 4 requests): one user's sweep of patient ids,
	// or a busy ward, must not flood the EMR.
	relMaxFetches = 32
	relCacheSize  = 10000
	// relMaxBody caps one lookup answer; a larger one is an error.
	relMaxBody = 1 << 20
)

var (
	errRelTimeout  = errors.New("relationships: lookup timed out")
	errRelLimit    = errors.New("relationships: too many lookups for one request")
	errRelUpstream = errors.New("relationships: lookup failed")
)

// relationships looks up care relationships in the EMR. It is safe for
// concurrent use.
type relationships struct {
	client   *http.Client // the proxy's own upstream client: its TLS and service identity
	base     string       // the upstream's absolute FHIR base
	bases    []string     // absolute FHIR bases whose references name local resources
	ttl      time.Duration
	negTTL   time.Duration // for answers that relate nothing (see cacheFor)
	timeout  time.Duration
	lookback time.Duration
	now      func() time.Time
	log      *slog.Logger
	cache    *relCache
	roles    roleCache // who each user is (identities)
	flights  flights
	lookups  *prometheus.CounterVec
	workers  int
	maxLooks int
	fetching chan struct{} // a slot per lookup asking the EMR (relMaxFetches)
}

// newRelationships builds the lookup for cfg; bases are the FHIR bases
// (public and upstream) under which an absolute reference is local.
func newRelationships(cfg policy.RelationshipsConfig, client *http.Client, base string, bases []string,
	now func() time.Time, log *slog.Logger, reg prometheus.Registerer) *relationships {
	r := &relationships{client: client, base: base, bases: bases, ttl: cfg.TTL, negTTL: cfg.NegativeTTL, timeout: cfg.Timeout,
		lookback: cfg.EncounterLookback, now: now, log: log, cache: newRelCache(relCacheSize),
		workers: relWorkers, maxLooks: relMaxLookups, fetching: make(chan struct{}, relMaxFetches),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chartguard_relationship_lookups_total",
			Help: "Care-relationship lookups per (user, patient) by outcome: hit (cache), miss (asked the EMR), " +
				"error, timeout, limit (over the per-request cap); all but hit and miss deny.",
		}, []string{"outcome"})}
	for _, o := range []string{"hit", "miss", "error", "timeout", "limit"} {
		r.lookups.WithLabelValues(o)
	}
	reg.MustRegister(r.lookups)
	return r
}

// relState is one request's relationships: every patient resolved so far,
// and how many upstream lookups the request made.
type relState struct {
	mu      sync.Mutex
	got     map[string]relResult
	lookups int
}

type relResult struct {
	rel chartguard.Relationship
	err error
}

func (x *exchange) relState() *relState {
	if x.rels == nil {
		x.rels = &relState{got: map[string]relResult{}}
	}
	return x.rels
}

// relate fills in.Relationship for the patients of in.Resource. It returns
// false, and the denial to use instead of the policy's, when one of them
// cannot be established.
func (p *Proxy) relate(ctx context.Context, x *exchange, in *chartguard.Input) (chartguard.Decision, bool) {
	if p.rels == nil {
		return chartguard.Decision{}, true
	}
	in.Relationship = map[string]chartguard.Relationship{}
	res := &in.Resource
	user, ok := p.rels.userRef(in.User.FHIRUser)
	if !ok || res.PatientStatus != chartguard.PatientsKnown || len(res.Patients) == 0 {
		return chartguard.Decision{}, true
	}
	st := x.relState()
	p.rels.resolve(ctx, st, x.requestID, user, res.Patients)
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, pt := range res.Patients {
		r := st.got[pt]
		if r.err != nil && hasGrant(in.Session.BreakGlass, pt, in.Request.Time) {
			// Break-the-glass is for when the usual checks cannot help: an
			// active grant for the patient stands in for the relationship,
			// as the policy decides (it sees none for this patient).
			continue
		}
		if r.err != nil {
			dec := chartguard.Decision{Reasons: []string{reasonRelationship}, ID: newDecisionID()}
			if x.policy != nil {
				dec.Revision = x.policy.Revision()
			}
			return dec, false
		}
		in.Relationship[pt] = r.rel
	}
	return chartguard.Decision{}, true
}

// hasGrant reports whether grants hold one for patient that has not
// expired at now.
func hasGrant(grants []chartguard.BTGGrant, patient string, now time.Time) bool {
	for _, g := range grants {
		if g.Patient == patient && g.ExpiresAt.After(now) {
			return true
		}
	}
	return false
}

// prefetchRelationships resolves, in parallel, the relationships of every
// patient the response body names, before its resources are decided one by
// one (each then finds its patients resolved).
func (p *Proxy) prefetchRelationships(ctx context.Context, x *exchange, body []byte, opts fhirscan.Options) {
	if p.rels == nil || x.principal == nil {
		return
	}
	user, ok := p.rels.userRef(x.principal.Identity.FHIRUser)
	if !ok {
		return
	}
	opts.Rewrite = nil
	var patients []string
	seen := map[string]bool{}
	// Errors are left to the real check, which reads the same body.
	_, _ = fhirscan.Filter(body, opts, func(r fhirscan.Resource) (bool, error) {
		if r.PatientStatus == fhirscan.PatientsKnown {
			for _, pt := range r.Patients {
				if !seen[pt] {
					seen[pt] = true
					patients = append(patients, pt)
				}
			}
		}
		return true, nil
	})
	p.rels.resolve(ctx, x.relState(), x.requestID, user, patients)
}

// resolve adds the relationships of user with patients to st: from the
// cache, else from the EMR, at most workers at a time and at most maxLooks
// lookups per request.
func (r *relationships) resolve(ctx context.Context, st *relState, requestID, user string, patients []string) {
	var todo []string
	now := r.now()
	st.mu.Lock()
	for _, pt := range patients {
		if _, done := st.got[pt]; done {
			continue
		}
		switch rel, hit := r.cache.get(user, pt, now); {
		case !fhirID.MatchString(pt):
			st.got[pt] = relResult{} // no such patient in any EMR: no relationship
		case hit:
			st.got[pt] = relResult{rel: rel}
			r.lookups.WithLabelValues("hit").Inc()
		case st.lookups >= r.maxLooks:
			st.got[pt] = relResult{err: errRelLimit}
			r.lookups.WithLabelValues("limit").Inc()
		default:
			st.lookups++
			st.got[pt] = relResult{err: errRelTimeout} // until answered
			todo = append(todo, pt)
		}
	}
	st.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	// One deadline for the request's lookups, however many rounds of
	// workers they take: a slow EMR holds a request for timeout, not for
	// timeout per round.
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	sem := make(chan struct{}, r.workers)
	var wg sync.WaitGroup
	var failed sync.Once
	for i, pt := range todo {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			// The rest stay errRelTimeout, never asked.
			r.lookups.WithLabelValues("timeout").Add(float64(len(todo) - i))
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			rel, err := r.lookup(ctx, requestID, user, pt)
			r.lookups.WithLabelValues(outcomeOf(err)).Inc()
			if err != nil {
				failed.Do(func() {
					r.log.Warn("care relationship could not be checked; denying", "request_id", requestID,
						"outcome", outcomeOf(err), "error", err)
				})
			}
			st.mu.Lock()
			st.got[pt] = relResult{rel: rel, err: err}
			st.mu.Unlock()
		})
	}
	wg.Wait()
}

func outcomeOf(err error) string {
	switch {
	case err == nil:
		return "miss"
	case errors.Is(err, errRelTimeout):
		return "timeout"
	}
	return "error"
}

// lookup returns the relationship of user with patient, joining a fetch
// of the same pair already under way. It waits at most until that fetch's
// deadline (or ctx's end).
func (r *relationships) lookup(ctx context.Context, requestID, user, patient string) (chartguard.Relationship, error) {
	f := r.flights.join(user+"\x00"+patient, r.timeout, func(ctx context.Context) (chartguard.Relationship, error) {
		select {
		case r.fetching <- struct{}{}:
			defer func() { <-r.fetching }()
		case <-ctx.Done():
			return chartguard.Relationship{}, errRelTimeout // waited its whole time for a slot
		}
		rel, err := r.fetch(ctx, requestID, user, patient)
		if err == nil {
			expires := r.now().Add(r.cacheFor(rel))
			if roles, ok := r.roles.expires(user); ok && roles.Before(expires) {
				expires = roles // what rel was computed from goes stale first
			}
			r.cache.put(user, patient, rel, expires)
		}
		return rel, err
	})
	// Security: the fetch's own context ends at its deadline, but a token
	// refresh for the service identity (oauth2) does not watch it; waiting
	// on a timer of our own keeps the bound whatever the fetch does.
	wait := time.NewTimer(time.Until(f.deadline) + 5*time.Millisecond)
	defer wait.Stop()
	select {
	case <-f.done:
		return f.rel, f.err
	case <-wait.C:
		return chartguard.Relationship{}, errRelTimeout
	case <-ctx.Done():
		return chartguard.Relationship{}, errRelTimeout
	}
}

// cacheFor is how long rel is reused. An answer relating the user to the
// patient only through the patient's department is negative here: whether
// it relates them is the policy's call, and a transfer changes it.
func (r *relationships) cacheFor(rel chartguard.Relationship) time.Duration {
	if rel.CareTeam || rel.PCP || rel.EncounterDaysAgo != nil {
		return r.ttl
	}
	return r.negTTL
}

// flights runs one fetch per key at a time; callers of the same key share
// its result (single-flight).
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done     chan struct{}
	deadline time.Time
	joined   int // callers sharing the fetch, the first included
	rel      chartguard.Relationship
	err      error
}

// join returns the flight for key, starting fn under a fresh timeout
// context when none is under way. The fetch is detached from every caller:
// one caller going away does not fail the others.
func (fs *flights) join(key string, timeout time.Duration,
	fn func(context.Context) (chartguard.Relationship, error)) *flight {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.m[key]; ok {
		f.joined++
		return f
	}
	if fs.m == nil {
		fs.m = map[string]*flight{}
	}
	f := &flight{done: make(chan struct{}), deadline: time.Now().Add(timeout), joined: 1}
	fs.m[key] = f
	go func() {
		ctx, cancel := context.WithDeadline(context.Background(), f.deadline)
		defer cancel()
		f.rel, f.err = fn(ctx)
		fs.mu.Lock()
		delete(fs.m, key)
		fs.mu.Unlock()
		close(f.done)
	}()
	return f
}

// relCache is a bounded LRU of relationships with expiry. Safe for
// concurrent use.
type relCache struct {
	mu  sync.Mutex
	max int
	ll  *list.List
	m   map[string]*list.Element
}

type relEntry struct {
	key     string
	rel     chartguard.Relationship
	expires time.Time
}

func newRelCache(max int) *relCache {
	return &relCache{max: max, ll: list.New(), m: map[string]*list.Element{}}
}

func (c *relCache) get(user, patient string, now time.Time) (chartguard.Relationship, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[user+"\x00"+patient]
	if !ok {
		return chartguard.Relationship{}, false
	}
	e := el.Value.(*relEntry)
	if !now.Before(e.expires) {
		c.ll.Remove(el)
		delete(c.m, e.key)
		return chartguard.Relationship{}, false
	}
	c.ll.MoveToFront(el)
	return e.rel, true
}

func (c *relCache) put(user, patient string, rel chartguard.Relationship, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := user + "\x00" + patient
	if el, ok := c.m[key]; ok {
		el.Value = &relEntry{key: key, rel: rel, expires: expires}
		c.ll.MoveToFront(el)
		return
	}
	c.m[key] = c.ll.PushFront(&relEntry{key: key, rel: rel, expires: expires})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*relEntry).key)
	}
}

func (c *relCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// fhirID is a FHIR resource id (R4 2.24.0.3: [A-Za-z0-9\-\.]{1,64}).
var fhirID = regexp.MustCompile(`^[A-Za-z0-9.\-]{1,64}$`)

// userRef is the user's reference for lookups, "Practitioner/id" or
// "PractitionerRole/id", from the fhir_user claim (relative, or absolute
// under a FHIR base ChartGuard fronts). Other users (patients, related
// persons, none) are never looked up: CareTeam, Encounter and
// generalPractitioner relate clinicians.
func (r *relationships) userRef(fhirUser string) (string, bool) {
	ref := r.localRef(fhirUser)
	typ, id, ok := strings.Cut(ref, "/")
	if !ok || (typ != "Practitioner" && typ != "PractitionerRole") || !fhirID.MatchString(id) {
		return "", false
	}
	return ref, true
}

// localRef turns a reference into "Type/id": a base ChartGuard fronts is
// removed, and so is a version (/_history/n). A foreign absolute reference
// is returned as it is (and matches nothing relative).
func (r *relationships) localRef(ref string) string {
	for _, b := range r.bases {
		if rest, ok := strings.CutPrefix(ref, b+"/"); ok {
			ref = rest
			break
		}
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	return ref
}

// newDecisionID is a fresh decision id for a denial the proxy makes
// without the policy.
func newDecisionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
