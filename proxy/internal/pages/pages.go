package pages

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

//go:embed templates/*.html templates/style.css
var files embed.FS

// Paths and names the rendered pages depend on.
const (
	// LogoutPath is where every "Sign out" form posts to.
	LogoutPath = "/.chartguard/logout"
	// CSRFField is the name of the hidden form field that carries Data.CSRF.
	CSRFField = "csrf"
)

// ErrTemplate reports that the embedded templates could not be loaded.
var ErrTemplate = errors.New("pages: template")

// Data is what every page needs to know about the request. All fields are
// untrusted text; they are escaped and length-capped on output.
type Data struct {
	User      string // display name, "" when signed out
	CSRF      string // token for POST forms, "" when signed out
	RequestID string // shown as a reference for the help desk; "" hides it
}

// Pages renders ChartGuard's own HTML pages. It is immutable after [New]
// and safe for concurrent use.
type Pages struct {
	pages map[string]*template.Template
	css   template.CSS
	csp   string
}

// page names, one per templates/<name>.html.
const (
	pageLoggedOff    = "logged_off"
	pageNotSaved     = "submission_not_saved"
	pageDenied       = "access_denied"
	pageError        = "error"
	pageLogout       = "logout_confirm"
	pageLoginFailed  = "login_failed"
	pageSignIn       = "sign_in"
	layoutFile       = "templates/layout.html"
	styleFile        = "templates/style.css"
	templateFileFmt  = "templates/%s.html"
	layoutTemplateID = "layout"
)

// New parses every template once. It fails only if the embedded files are
// broken, which is a build defect.
func New() (*Pages, error) {
	css, err := files.ReadFile(styleFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	layout, err := template.ParseFS(files, layoutFile)
	if err != nil {
		return nil, fmt.Errorf("%w: layout: %w", ErrTemplate, err)
	}
	names := []string{pageLoggedOff, pageNotSaved, pageDenied, pageError, pageLogout, pageLoginFailed, pageSignIn}
	p := &Pages{
		pages: make(map[string]*template.Template, len(names)),
		css:   template.CSS(css),
		csp:   contentSecurityPolicy(css),
	}
	for _, name := range names {
		base, err := layout.Clone()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrTemplate, name, err)
		}
		t, err := base.ParseFS(files, fmt.Sprintf(templateFileFmt, name))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrTemplate, name, err)
		}
		// html/template escapes on first use: do it now, so a broken
		// template fails at startup instead of on a clinician's screen.
		if err := t.ExecuteTemplate(io.Discard, layoutTemplateID, p.newView(Data{})); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrTemplate, name, err)
		}
		p.pages[name] = t
	}
	return p, nil
}

// contentSecurityPolicy allows nothing but the one inline style sheet, by
// hash.
//
// Threat: injected markup (a display name, a reason) that loads script,
// styles, images or frames, posts a form elsewhere, or frames the page for
// clickjacking. Choice: default-src 'none', the style sheet allowed by its
// SHA-256 (no 'unsafe-inline', so an injected style attribute or element
// is inert), forms only to our own origin, framing only by our own origin,
// no <base>. Accepted risk: none known; the pages need nothing else.
func contentSecurityPolicy(css []byte) string {
	sum := sha256.Sum256(css)
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
}

// view is what a template sees. Every string in it has passed [clean].
type view struct {
	Data
	SignedIn    bool // User is known: show who is signed in and a way out
	CanPost     bool // signed in and a CSRF token to post with
	CSS         template.CSS
	Reason      string
	SignInURL   string
	TryAgainURL string
	Message     string
	Reasons     []string
	Status      int
	StatusText  string
	ContinueURL string // sign-in interstitial: the IdP's authorization URL
	IdPHost     string
}

// LoggedOff tells the user their session ended: reason is "idle",
// "absolute" or "logout" (anything else gets a neutral wording). It links
// to signInURL when that is a local path. Status 200.
func (p *Pages) LoggedOff(w http.ResponseWriter, d Data, reason string, signInURL string) {
	v := p.newView(d)
	v.Reason = reason
	v.SignInURL = localPath(signInURL)
	p.render(w, http.StatusOK, pageLoggedOff, v)
}

// SubmissionNotSaved answers a non-GET that arrived on an expired session:
// it says plainly that nothing was saved and offers sign-in in a new tab
// (target=_blank rel=noopener) so the clinician's form in this tab
// survives. Status 401: the request lacked a valid session; no
// WWW-Authenticate challenge is sent because browser sessions have no
// challenge scheme.
func (p *Pages) SubmissionNotSaved(w http.ResponseWriter, d Data, signInURL string) {
	v := p.newView(d)
	v.SignInURL = localPath(signInURL)
	p.render(w, http.StatusUnauthorized, pageNotSaved, v)
}

// AccessDenied is the 403 page. reasons are user-facing sentences chosen
// by the proxy (at most [maxReasons] are shown); nil shows none.
func (p *Pages) AccessDenied(w http.ResponseWriter, d Data, reasons []string) {
	v := p.newView(d)
	for i, r := range reasons {
		if i == maxReasons {
			break
		}
		if r = clean(r, maxReasonLen); r != "" {
			v.Reasons = append(v.Reasons, r)
		}
	}
	p.render(w, http.StatusForbidden, pageDenied, v)
}

// Error is the generic error page. status must be 400–599; anything else
// is rendered as 500. An empty message falls back to the status text.
// message is shown to the user: never pass err.Error().
func (p *Pages) Error(w http.ResponseWriter, d Data, status int, message string) {
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	v := p.newView(d)
	v.Status = status
	v.StatusText = http.StatusText(status)
	if v.StatusText == "" {
		v.StatusText = "Error " + strconv.Itoa(status)
	}
	v.Message = clean(message, maxMessageLen)
	if v.Message == "" {
		v.Message = v.StatusText + "."
	}
	p.render(w, status, pageError, v)
}

// LogoutConfirm answers GET /.chartguard/logout with a form that POSTs
// there with the CSRF token. Signing out never happens on a GET, so a link
// or prefetch cannot end a session. Status 200.
func (p *Pages) LogoutConfirm(w http.ResponseWriter, d Data) {
	p.render(w, http.StatusOK, pageLogout, p.newView(d))
}

// LoginFailed tells the user sign-in did not work, with message (chosen
// by the proxy; never an IdP error echoed verbatim) and a link to
// tryAgainURL when that is a local path. Status 401.
func (p *Pages) LoginFailed(w http.ResponseWriter, d Data, message string, tryAgainURL string) {
	v := p.newView(d)
	v.Message = clean(message, maxMessageLen)
	if v.Message == "" {
		v.Message = "ChartGuard could not sign you in."
	}
	v.TryAgainURL = localPath(tryAgainURL)
	p.render(w, http.StatusUnauthorized, pageLoginFailed, v)
}

// SignIn is the sign-in interstitial: it names the identity provider and
// sends the browser on to authURL at once (a zero-delay meta refresh, so
// nothing waits and no script is needed), with a "Continue to sign in" link
// for browsers that do not follow refreshes. Status 200.
//
// Threat: authURL is not a local path, so a value taken from a request
// would make this page an open redirect. Choice: the caller passes the
// authorization URL it built itself from the configured issuer's discovery
// document; this function still accepts only an absolute http(s) URL with
// a host, no user info and a bounded length, and renders the error page
// otherwise. html/template escapes it as a URL in both places it appears.
// Accepted risk: a compromised IdP discovery document can point sign-in at
// another host; it could do the same with a 302, and the IdP is trusted for
// identity anyway.
func (p *Pages) SignIn(w http.ResponseWriter, d Data, authURL string) {
	u, err := url.Parse(authURL)
	if err != nil || len(authURL) > maxAuthURLLen || (u.Scheme != "https" && u.Scheme != "http") ||
		u.Host == "" || u.User != nil || u.Opaque != "" {
		p.Error(w, d, http.StatusInternalServerError, "Sign-in is misconfigured. Contact the help desk.")
		return
	}
	v := p.newView(d)
	v.ContinueURL = u.String()
	v.IdPHost = clean(u.Hostname(), maxUserLen)
	p.render(w, http.StatusOK, pageSignIn, v)
}

func (p *Pages) newView(d Data) view {
	d.User = clean(d.User, maxUserLen)
	d.RequestID = clean(d.RequestID, maxRequestIDLen)
	if !isToken(d.CSRF) {
		d.CSRF = ""
	}
	signedIn := d.User != ""
	return view{
		Data:     d,
		SignedIn: signedIn,
		CanPost:  signedIn && d.CSRF != "",
		CSS:      p.css,
	}
}

// render executes into a buffer first so a template failure can still
// become a clean 500 instead of half a page.
func (p *Pages) render(w http.ResponseWriter, status int, name string, v view) {
	var buf bytes.Buffer
	t := p.pages[name]
	if t == nil || t.ExecuteTemplate(&buf, layoutTemplateID, v) != nil {
		buf.Reset()
		buf.WriteString(fallbackPage)
		status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", p.csp)
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // a failed write means the client has gone
}

// fallbackPage is served only if a template fails to execute, which tests
// rule out; it needs no styles and carries no request data.
const fallbackPage = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><title>Error – ChartGuard</title></head>
<body><main><h1>ChartGuard could not show this page</h1>
<p>Please try again. If it keeps happening, contact the help desk.</p></main></body></html>
`
