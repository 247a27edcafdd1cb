package proxy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chartguard/chartguard/authn"
	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/proxy/internal/pages"
	"github.com/chartguard/chartguard/session"
)

// Browser sign-in: /.chartguard/login starts an OIDC authorization-code
// login (authn.Login), /.chartguard/callback finishes it into a server-side
// session (package session) whose opaque id is the session cookie, and
// every later request carrying the cookie is authenticated by it. Logout,
// the session endpoint and the pages a browser sees live here too.

const (
	pendingTTL = 10 * time.Minute // how long a login may take at the IdP
	maxPending = 10000            // login attempts in flight; more are refused
)

// sso holds browser sign-in; nil when oidc.client_secret_file is not set.
type sso struct {
	login    *authn.Login
	sessions *session.Manager
	store    *session.Memory
	pages    *pages.Pages
	pending  pendingLogins
	cookie   string // session cookie name
	binding  string // login-binding cookie name
	secure   bool

	logins   *prometheus.CounterVec
	expiries *prometheus.CounterVec
}

func newSSO(cfg *Config, logger *slog.Logger, reg prometheus.Registerer) (*sso, error) {
	login, err := authn.NewLogin(cfg.OIDC, logger.With("component", "login"))
	if err != nil {
		return nil, err
	}
	store := session.NewMemory(cfg.Session.Now)
	mgr, err := session.NewManager(cfg.Session.Config, store)
	if err != nil {
		return nil, err
	}
	pg, err := pages.New()
	if err != nil {
		return nil, err
	}
	s := &sso{login: login, sessions: mgr, store: store, pages: pg, secure: !cfg.Session.InsecureDev,
		cookie: "__Host-chartguard_session", binding: "__Host-chartguard_login",
		pending: pendingLogins{m: map[string]pendingLogin{}}}
	if cfg.Session.InsecureDev {
		// Security: a loopback-only development mode (validated); browsers
		// refuse __Host- cookies without Secure on plain http.
		s.cookie, s.binding = "chartguard_session", "chartguard_login"
	}
	s.logins = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chartguard_logins_total",
		Help: "Browser sign-ins by outcome (success, no_role, failed, expired_state)."}, []string{"outcome"})
	s.expiries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chartguard_session_expiries_total",
		Help: "Sessions found expired, by kind (idle, absolute)."}, []string{"kind"})
	active := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chartguard_sessions_active",
		Help: "Sessions held by the session store."}, func() float64 { return float64(store.Len()) })
	reg.MustRegister(s.logins, s.expiries, active)
	return s, nil
}

// run flushes activity every activity_flush and sweeps expired sessions.
func (s *sso) run(ctx context.Context, flush time.Duration, now func() time.Time) {
	t := time.NewTicker(flush)
	defer t.Stop()
	sweep := time.Now()
	for {
		select {
		case <-ctx.Done():
			_ = s.sessions.Flush(context.Background())
			return
		case <-t.C:
			_ = s.sessions.Flush(ctx)
			if time.Since(sweep) > time.Minute {
				s.store.Sweep(now())
				s.pending.sweep(now())
				sweep = time.Now()
			}
		}
	}
}

// pendingLogin is one login attempt, kept server-side by its state and
// bound to the browser that started it (the hash of a random cookie).
type pendingLogin struct {
	req     authn.LoginRequest
	rd      string
	binding [32]byte
	expires time.Time
}

type pendingLogins struct {
	mu sync.Mutex
	m  map[string]pendingLogin
}

func (p *pendingLogins) put(state string, pl pendingLogin, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.m) >= maxPending {
		p.sweepLocked(now)
		if len(p.m) >= maxPending {
			return false
		}
	}
	p.m[state] = pl
	return true
}

// take removes and returns the attempt: a state is good for one callback.
func (p *pendingLogins) take(state string, now time.Time) (pendingLogin, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pl, ok := p.m[state]
	delete(p.m, state)
	return pl, ok && now.Before(pl.expires)
}

func (p *pendingLogins) sweep(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweepLocked(now)
}

func (p *pendingLogins) sweepLocked(now time.Time) {
	for k, v := range p.m {
		if !now.Before(v.expires) {
			delete(p.m, k)
		}
	}
}

// serveReserved answers /.chartguard/… routes.
func (p *Proxy) serveReserved(w http.ResponseWriter, r *http.Request, x *exchange) {
	switch name := strings.TrimPrefix(x.target.Path, reservedPrefix); {
	case name == "jwks.json" && p.asserter != nil && isGet(r):
		p.page(w, x, http.StatusOK, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "public, max-age=300")
			_, _ = w.Write(p.asserter.JWKS())
		})
	case p.sso == nil:
		p.respond(w, x, problem(http.StatusNotFound, "not-found", errors.New("no such ChartGuard endpoint")))
	case name == "login" && isGet(r):
		p.startLogin(w, r, x)
	case name == "callback" && isGet(r):
		p.finishLogin(w, r, x)
	case name == "logout" && (isGet(r) || r.Method == http.MethodPost):
		p.logout(w, r, x)
	case name == "session" && isGet(r):
		p.sessionInfo(w, r, x)
	default:
		p.respond(w, x, problem(http.StatusNotFound, "not-found", errors.New("no such ChartGuard endpoint")))
	}
}

func isGet(r *http.Request) bool { return r.Method == http.MethodGet || r.Method == http.MethodHead }

// page commits the exchange's event with status, then lets render write.
// ChartGuard's own pages and redirects disclose no patient data, so they go
// ahead even when the audit log refuses (the refusal is logged).
func (p *Proxy) page(w http.ResponseWriter, x *exchange, status int, render func(http.ResponseWriter)) {
	p.commit(context.Background(), x, status, -1, true)
	w.Header().Set("X-Request-Id", x.requestID)
	render(w)
}

func (p *Proxy) callbackURL() string {
	return p.cfg.publicURL.String() + reservedPrefix + "callback"
}

func (p *Proxy) startLogin(w http.ResponseWriter, r *http.Request, x *exchange) {
	s := p.sso
	if p.throttled(w, x) {
		return
	}
	rd, ok := safeReturnPath(r.URL.Query().Get("rd"), p.cfg.Limits)
	if !ok {
		rd = "/"
	}
	authURL, req, err := s.login.Start(r.Context(), p.callbackURL())
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	binding := base64.RawURLEncoding.EncodeToString(raw[:])
	if err == nil && !s.pending.put(req.State, pendingLogin{req: req, rd: rd, binding: sha256.Sum256([]byte(binding)),
		expires: p.now().Add(pendingTTL)}, p.now()) {
		err = errors.New("too many sign-ins in progress")
	}
	if err != nil {
		p.log.Warn("sign-in could not start", "request_id", x.requestID, "error_class", errorClass(err))
		p.page(w, x, http.StatusServiceUnavailable, func(w http.ResponseWriter) {
			s.pages.Error(w, pages.Data{RequestID: x.requestID}, http.StatusServiceUnavailable,
				"Sign-in is not available right now: the identity provider cannot be reached. Try again in a minute.")
		})
		return
	}
	p.setCookie(w, s.binding, binding, int(pendingTTL/time.Second))
	p.setCookie(w, s.cookie, "", -1) // old session cookies are cleared on the way in
	// The interstitial names the IdP and continues there at once (see
	// pages.SignIn); it replaces a bare 302 so the user sees where their
	// password is about to go and the flow works without script.
	p.page(w, x, http.StatusOK, func(w http.ResponseWriter) {
		s.pages.SignIn(w, pages.Data{RequestID: x.requestID}, authURL)
	})
}

func (p *Proxy) finishLogin(w http.ResponseWriter, r *http.Request, x *exchange) {
	s := p.sso
	q := r.URL.Query()
	x.action = chartguard.ActionLogin
	fail := func(status int, reason, message string) {
		s.logins.WithLabelValues(reason).Inc()
		x.decision = &chartguard.Decision{Reasons: []string{reason}}
		p.setCookie(w, s.binding, "", -1)
		d := pages.Data{RequestID: x.requestID}
		p.page(w, x, status, func(w http.ResponseWriter) {
			if status == http.StatusUnauthorized {
				s.pages.LoginFailed(w, d, message, reservedPrefix+"login") // always 401
				return
			}
			s.pages.Error(w, d, status, message)
		})
	}
	pl, ok := s.pending.take(q.Get("state"), p.now())
	switch {
	case !ok:
		fail(http.StatusUnauthorized, "expired_state", "This sign-in link has expired or was already used. Please sign in again.")
		return
	case !p.bindingMatches(r, pl.binding):
		fail(http.StatusUnauthorized, "expired_state", "This sign-in was started in another browser or tab. Please sign in again.")
		return
	case q.Get("error") != "" || q.Get("code") == "":
		fail(http.StatusUnauthorized, "idp_refused", "The identity provider did not sign you in.")
		return
	}
	res, err := s.login.Finish(r.Context(), pl.req, q.Get("code"))
	switch {
	case errors.Is(err, authn.ErrNoRole):
		fail(http.StatusForbidden, "no_role", "You signed in, but your account has no role in ChartGuard. Ask your administrator for access.")
		return
	case errors.Is(err, authn.ErrUnavailable):
		fail(http.StatusServiceUnavailable, "idp_unavailable", "The identity provider cannot be reached. Please try again in a minute.")
		return
	case err != nil:
		p.log.Warn("sign-in refused", "request_id", x.requestID, "error", err)
		fail(http.StatusUnauthorized, "invalid_id_token", "Sign-in could not be verified. Please sign in again.")
		return
	}
	sess, err := s.sessions.New(r.Context(), res.Identity, session.Login{AuthTime: res.AuthTime, IP: x.ip, IDTokenHint: res.IDToken})
	if err != nil {
		p.log.Error("session store refused a new session", "request_id", x.requestID, "error", err)
		fail(http.StatusServiceUnavailable, "session_store", "Your session could not be started. Please try again.")
		return
	}
	s.logins.WithLabelValues("success").Inc()
	x.principal = s.principal(sess, p.now())
	x.decision = &chartguard.Decision{Allow: true, Reasons: []string{}}
	p.setCookie(w, s.binding, "", -1)
	p.setCookie(w, s.cookie, sess.ID, 0)
	p.page(w, x, http.StatusSeeOther, func(w http.ResponseWriter) {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, pl.rd, http.StatusSeeOther)
	})
}

func (p *Proxy) bindingMatches(r *http.Request, want [32]byte) bool {
	c, err := r.Cookie(p.sso.binding)
	if err != nil {
		return false
	}
	got := sha256.Sum256([]byte(c.Value))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// principal is what a session authenticates.
func (s *sso) principal(sess *session.Session, now time.Time) *chartguard.Principal {
	return &chartguard.Principal{Identity: sess.Identity,
		Token:   chartguard.Token{Kind: chartguard.TokenSession, ClientID: "browser"},
		Session: sess.Info(now), TokenHash: session.Hash(sess.ID)}
}

// sessionFor looks up the request's session cookie. ok is false when the
// request carries none.
func (p *Proxy) sessionFor(r *http.Request, path string) (sess *session.Session, ok bool, err error) {
	c, cerr := r.Cookie(p.sso.cookie)
	if cerr != nil || c.Value == "" {
		return nil, false, nil
	}
	sess, err = p.sso.sessions.Lookup(r.Context(), c.Value, session.Activity{Path: path})
	return sess, true, err
}

func (p *Proxy) logout(w http.ResponseWriter, r *http.Request, x *exchange) {
	s := p.sso
	sess, _, err := p.sessionFor(r, session.SessionEndpoint) // looking at logout is no activity
	if err != nil || sess == nil {
		p.setCookie(w, s.cookie, "", -1)
		p.page(w, x, http.StatusOK, func(w http.ResponseWriter) {
			s.pages.LoggedOff(w, pages.Data{RequestID: x.requestID}, "logout", reservedPrefix+"login")
		})
		return
	}
	x.principal = s.principal(sess, p.now())
	d := pages.Data{User: displayName(sess.Identity), CSRF: sess.CSRFSecret, RequestID: x.requestID}
	if r.Method != http.MethodPost {
		p.page(w, x, http.StatusOK, func(w http.ResponseWriter) { s.pages.LogoutConfirm(w, d) })
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	token := r.PostFormValue("csrf")
	if subtle.ConstantTimeCompare([]byte(token), []byte(sess.CSRFSecret)) != 1 {
		p.page(w, x, http.StatusForbidden, func(w http.ResponseWriter) {
			s.pages.Error(w, d, http.StatusForbidden, "This sign-out form has expired. Reload the page and sign out again.")
		})
		return
	}
	_ = s.sessions.End(r.Context(), sess.ID)
	x.action = chartguard.ActionLogout
	p.setCookie(w, s.cookie, "", -1)
	if end := s.login.EndSessionURL(r.Context(), sess.IDTokenHint, p.cfg.publicURL.String()+reservedPrefix+"login"); end != "" {
		p.page(w, x, http.StatusSeeOther, func(w http.ResponseWriter) { http.Redirect(w, r, end, http.StatusSeeOther) })
		return
	}
	p.page(w, x, http.StatusOK, func(w http.ResponseWriter) {
		s.pages.LoggedOff(w, pages.Data{RequestID: x.requestID}, "logout", reservedPrefix+"login")
	})
}

// sessionInfo is /.chartguard/session: who is signed in and when the
// session ends. Asking is not activity.
func (p *Proxy) sessionInfo(w http.ResponseWriter, r *http.Request, x *exchange) {
	sess, _, err := p.sessionFor(r, session.SessionEndpoint)
	if err != nil || sess == nil {
		p.respond(w, x, apiProblem{status: http.StatusUnauthorized, code: "login", message: "not signed in"})
		return
	}
	x.principal = p.sso.principal(sess, p.now())
	idle, abs := p.sso.sessions.Deadlines(sess)
	now := p.now()
	body, _ := json.Marshal(map[string]any{"user": displayName(sess.Identity),
		"expires_in": int(abs.Sub(now).Seconds()), "idle_expires_in": int(idle.Sub(now).Seconds())})
	p.page(w, x, http.StatusOK, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(body)
	})
}

// browserUnauthenticated answers a request with no usable session: a
// browser navigation is sent to sign in (or told it was logged off), an
// API call gets 401.
func (p *Proxy) browserUnauthenticated(w http.ResponseWriter, r *http.Request, x *exchange, err error) {
	s := p.sso
	signIn := reservedPrefix + "login?rd=" + urlQueryEscape(x.returnPath())
	var kind string
	switch {
	case errors.Is(err, session.ErrExpiredIdle):
		kind = "idle"
	case errors.Is(err, session.ErrExpiredAbsolute):
		kind = "absolute"
	}
	ended := err != nil && !errors.Is(err, authn.ErrNoCredentials) // a session cookie that no longer works
	if ended {
		p.setCookie(w, s.cookie, "", -1)
	}
	if kind != "" {
		s.expiries.WithLabelValues(kind).Inc()
		x.action = chartguard.ActionLogout
		x.decision = &chartguard.Decision{Reasons: []string{"session expired (" + kind + ")"}}
	}
	switch {
	case ended && !isGet(r):
		// A form posted from a page whose session has ended (long enough
		// ago that the store forgot it, or never valid): say plainly that
		// nothing was saved rather than lose it silently.
		p.page(w, x, http.StatusUnauthorized, func(w http.ResponseWriter) {
			s.pages.SubmissionNotSaved(w, pages.Data{RequestID: x.requestID}, signIn)
		})
	case kind != "" && isNavigation(r):
		p.page(w, x, http.StatusOK, func(w http.ResponseWriter) { // the page is a 200
			s.pages.LoggedOff(w, pages.Data{RequestID: x.requestID}, kind, signIn)
		})
	case p.throttled(w, x):
	case isNavigation(r):
		p.page(w, x, http.StatusFound, func(w http.ResponseWriter) { http.Redirect(w, r, signIn, http.StatusFound) })
	default:
		p.respond(w, x, apiProblem{status: http.StatusUnauthorized, code: "login", message: "sign-in required",
			header: http.Header{"WWW-Authenticate": {authn.WWWAuthenticate(authn.ErrNoCredentials)}}})
	}
}

// isNavigation tells a browser loading a page from a script or API call.
func isNavigation(r *http.Request) bool {
	if !isGet(r) {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	return r.Header.Get("X-Requested-With") == "" && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// setCookie sets (maxAge 0: for the browser session; < 0: deletes) one of
// ChartGuard's cookies: HttpOnly, SameSite=Lax, Path=/, Secure unless in
// insecure_dev.
func (p *Proxy) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		Secure: p.sso.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func displayName(id chartguard.Identity) string {
	if id.Name != "" {
		return id.Name
	}
	if id.Email != "" {
		return id.Email
	}
	return id.Subject
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
