package pages

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	maxPageBytes = 30 * 1024
	signInPath   = "/.chartguard/login?rd=%2Ffhir%2FPatient%2F1"
	hostile      = `<script>alert("x")</script>`
	idpAuthURL   = "https://idp.example.org/auth?client_id=cg&code_challenge=abc&redirect_uri=https%3A%2F%2Femr%2F.chartguard%2Fcallback&state=s1"
)

var (
	signedIn  = Data{User: "Dr. Ada Lovelace", CSRF: "tok-123_ABC", RequestID: "req-42"}
	signedOut = Data{RequestID: "req-43"}
)

type renderFunc func(p *Pages, w http.ResponseWriter, d Data)

type pageCase struct {
	name   string
	render renderFunc
	status int
	title  string
	h1     string // substring of the h1 text, signed in
}

func pageCases() []pageCase {
	return []pageCase{
		{"logged off idle", func(p *Pages, w http.ResponseWriter, d Data) { p.LoggedOff(w, d, "idle", signInPath) },
			http.StatusOK, "Signed out", "signed out"},
		{"submission not saved", func(p *Pages, w http.ResponseWriter, d Data) { p.SubmissionNotSaved(w, d, signInPath) },
			http.StatusUnauthorized, "Submission not saved", "not saved"},
		{"access denied", func(p *Pages, w http.ResponseWriter, d Data) { p.AccessDenied(w, d, []string{"Not your patient."}) },
			http.StatusForbidden, "Access denied", "Access denied"},
		{"error 502", func(p *Pages, w http.ResponseWriter, d Data) {
			p.Error(w, d, http.StatusBadGateway, "The EMR did not answer.")
		},
			http.StatusBadGateway, "Bad Gateway", "could not complete"},
		{"logout confirm", func(p *Pages, w http.ResponseWriter, d Data) { p.LogoutConfirm(w, d) },
			http.StatusOK, "Sign out", "Sign out"},
		{"login failed", func(p *Pages, w http.ResponseWriter, d Data) {
			p.LoginFailed(w, d, "Your account has no role here.", "/.chartguard/login")
		},
			http.StatusUnauthorized, "Sign-in failed", "Sign-in did not work"},
		{"sign in", func(p *Pages, w http.ResponseWriter, d Data) { p.SignIn(w, d, idpAuthURL) },
			http.StatusOK, "Sign in", "Sign in to continue"},
	}
}

func newPages(t testing.TB) *Pages {
	t.Helper()
	p, err := New()
	require.NoError(t, err)
	return p
}

func serve(t *testing.T, p *Pages, render renderFunc, d Data) (*httptest.ResponseRecorder, *node) {
	t.Helper()
	w := httptest.NewRecorder()
	render(p, w, d)
	return w, parseHTML(t, w.Body.String())
}

func TestPagesStructureAndHeaders(t *testing.T) {
	p := newPages(t)
	for _, tc := range pageCases() {
		for _, d := range []Data{signedIn, signedOut} {
			t.Run(tc.name+"/signed in="+boolName(d.User != ""), func(t *testing.T) {
				w, doc := serve(t, p, tc.render, d)

				assert.Equal(t, tc.status, w.Code)
				assertSecurityHeaders(t, w.Header())
				assert.LessOrEqual(t, w.Body.Len(), maxPageBytes)

				html := doc.one(t, "html")
				assert.Equal(t, "en", html.Attr["lang"])
				assert.Contains(t, doc.one(t, "title").Text(), tc.title)
				doc.one(t, "header")
				doc.one(t, "main")
				doc.one(t, "footer")
				h1 := doc.one(t, "h1")
				if d.User != "" {
					assert.Contains(t, h1.Text(), tc.h1)
				}
				assert.Contains(t, doc.one(t, "footer").Text(), d.RequestID)
				assertAccessibleControls(t, doc)
				assertSignOut(t, doc, d)
			})
		}
	}
}

func boolName(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func assertSecurityHeaders(t *testing.T, h http.Header) {
	t.Helper()
	assert.Equal(t, "text/html; charset=utf-8", h.Get("Content-Type"))
	assert.Equal(t, "no-store", h.Get("Cache-Control"))
	assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
	assert.Equal(t, "same-origin", h.Get("Referrer-Policy"))
	csp := h.Get("Content-Security-Policy")
	for _, directive := range []string{"default-src 'none'", "form-action 'self'", "frame-ancestors 'self'", "base-uri 'none'", "style-src 'sha256-"} {
		assert.Contains(t, csp, directive)
	}
	assert.NotContains(t, csp, "unsafe-inline")
	assert.NotContains(t, csp, "script-src")
}

// assertAccessibleControls: every control has an accessible name, every
// POST is a form with a button (never a link), nothing needs script.
func assertAccessibleControls(t *testing.T, doc *node) {
	t.Helper()
	assert.Empty(t, doc.all("script"))
	labels := map[string]bool{}
	for _, l := range doc.all("label") {
		labels[l.Attr["for"]] = true
	}
	for _, in := range doc.all("input") {
		if in.Attr["type"] != "hidden" {
			assert.True(t, labels[in.Attr["id"]], "input %q has no <label>", in.Attr["name"])
		}
	}
	for _, b := range doc.all("button") {
		assert.NotEmpty(t, b.Text(), "button without text")
		assert.Equal(t, "submit", b.Attr["type"])
	}
	for _, f := range doc.all("form") {
		assert.Equal(t, "post", f.Attr["method"])
		assert.NotEmpty(t, f.all("button"), "a form without a button")
	}
	for _, a := range doc.all("a") {
		assert.NotEmpty(t, a.Text(), "link without text")
		assert.NotEmpty(t, a.Attr["href"])
	}
}

func assertSignOut(t *testing.T, doc *node, d Data) {
	t.Helper()
	forms := doc.one(t, "header").all("form")
	if d.User == "" {
		assert.Empty(t, doc.all("form"), "signed out: no POST forms")
		assert.Empty(t, doc.all("input"), "signed out: no CSRF field")
		assert.NotContains(t, doc.one(t, "header").Text(), "Sign out")
		return
	}
	require.Len(t, forms, 1, "signed in: one sign-out form in the header")
	f := forms[0]
	assert.Equal(t, LogoutPath, f.Attr["action"])
	assert.Equal(t, "Sign out", f.one(t, "button").Text())
	in := f.one(t, "input")
	assert.Equal(t, "hidden", in.Attr["type"])
	assert.Equal(t, CSRFField, in.Attr["name"])
	assert.Equal(t, d.CSRF, in.Attr["value"])
	assert.Contains(t, doc.one(t, "header").Text(), d.User)
}

func TestSignedInWithoutTokenGetsNoForm(t *testing.T) {
	p := newPages(t)
	for _, csrf := range []string{"", "has space", strings.Repeat("a", maxTokenLen+1), "tok\x00"} {
		w, doc := serve(t, p, func(p *Pages, w http.ResponseWriter, d Data) { p.LogoutConfirm(w, d) },
			Data{User: "Dr. B", CSRF: csrf})
		assert.Equal(t, http.StatusOK, w.Code)
		assert.Empty(t, doc.all("form"), "no form can post without a usable token")
		links := doc.one(t, "header").all("a")
		require.Len(t, links, 1)
		assert.Equal(t, LogoutPath, links[0].Attr["href"], "GET link to the confirmation page instead")
	}
}

func TestHostileInputIsEscaped(t *testing.T) {
	p := newPages(t)
	d := Data{User: hostile, CSRF: `"><script>alert(1)</script>`, RequestID: hostile}
	for _, tc := range pageCases() {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			tc.render(p, w, d)
			body := w.Body.String()
			assert.NotContains(t, strings.ToLower(body), "<script")
			doc := parseHTML(t, body)
			assert.Empty(t, doc.all("script"))
			assert.Contains(t, doc.one(t, "header").Text(), hostile, "shown as text")
			assert.Contains(t, doc.one(t, "footer").Text(), hostile, "shown as text")
			assert.Equal(t, d.CSRF, doc.one(t, "header").one(t, "input").Attr["value"], "token round-trips unchanged")
		})
	}
	for name, render := range map[string]renderFunc{
		"access denied reasons": func(p *Pages, w http.ResponseWriter, d Data) { p.AccessDenied(w, d, []string{hostile}) },
		"error message":         func(p *Pages, w http.ResponseWriter, d Data) { p.Error(w, d, 500, hostile) },
		"login failed message":  func(p *Pages, w http.ResponseWriter, d Data) { p.LoginFailed(w, d, hostile, "") },
	} {
		t.Run(name, func(t *testing.T) {
			w, doc := serve(t, p, render, signedOut)
			assert.NotContains(t, w.Body.String(), "<script")
			assert.Contains(t, doc.one(t, "main").Text(), hostile)
		})
	}
}

func TestStyleHashMatchesCSP(t *testing.T) {
	p := newPages(t)
	for _, tc := range pageCases() {
		w, doc := serve(t, p, tc.render, signedIn)
		style := doc.one(t, "style")
		sum := sha256.Sum256([]byte(rawStyle(t, w.Body.String())))
		want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		assert.Contains(t, w.Header().Get("Content-Security-Policy"), want, tc.name)
		assert.NotEmpty(t, style.Text())
		assert.NotContains(t, w.Body.String(), " style=", "inline style attributes would be blocked")
	}
}

// rawStyle returns the exact bytes between <style> and </style>, which is
// what browsers hash.
func rawStyle(t *testing.T, body string) string {
	t.Helper()
	_, after, ok := strings.Cut(body, "<style>")
	require.True(t, ok)
	css, _, ok := strings.Cut(after, "</style>")
	require.True(t, ok)
	return css
}

func TestWorstCaseInputStaysUnder30KB(t *testing.T) {
	p := newPages(t)
	big := strings.Repeat(`"<&'`, 5000)
	reasons := make([]string, 100)
	for i := range reasons {
		reasons[i] = big
	}
	d := Data{User: big, CSRF: strings.Repeat(`"`, maxTokenLen), RequestID: big}
	long := "/" + strings.Repeat("%22", maxPathLen/3-1)
	authURL := "https://idp.example.org/?"
	authURL += strings.Repeat("&", maxAuthURLLen-len(authURL))
	renders := map[string]renderFunc{
		"logged off":     func(p *Pages, w http.ResponseWriter, d Data) { p.LoggedOff(w, d, big, long) },
		"not saved":      func(p *Pages, w http.ResponseWriter, d Data) { p.SubmissionNotSaved(w, d, long) },
		"access denied":  func(p *Pages, w http.ResponseWriter, d Data) { p.AccessDenied(w, d, reasons) },
		"error":          func(p *Pages, w http.ResponseWriter, d Data) { p.Error(w, d, 503, big) },
		"logout confirm": func(p *Pages, w http.ResponseWriter, d Data) { p.LogoutConfirm(w, d) },
		"login failed":   func(p *Pages, w http.ResponseWriter, d Data) { p.LoginFailed(w, d, big, long) },
		"sign in":        func(p *Pages, w http.ResponseWriter, d Data) { p.SignIn(w, d, authURL) },
	}
	for name, render := range renders {
		t.Run(name, func(t *testing.T) {
			w, doc := serve(t, p, render, d)
			t.Logf("worst case %d bytes", w.Body.Len())
			assert.LessOrEqual(t, w.Body.Len(), maxPageBytes)
			doc.one(t, "h1")
		})
	}
	_, doc := serve(t, p, renders["access denied"], d)
	assert.Len(t, doc.one(t, "main").all("li"), maxReasons)
}

func TestPageSizes(t *testing.T) {
	p := newPages(t)
	for _, tc := range pageCases() {
		w, _ := serve(t, p, tc.render, signedIn)
		t.Logf("%-22s %5d bytes", tc.name, w.Body.Len())
		assert.LessOrEqual(t, w.Body.Len(), maxPageBytes)
	}
}

func TestConcurrentRendering(t *testing.T) {
	p := newPages(t)
	var wg sync.WaitGroup
	for _, tc := range pageCases() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				w := httptest.NewRecorder()
				tc.render(p, w, signedIn)
				assert.Equal(t, tc.status, w.Code)
			}
		}()
	}
	wg.Wait()
}
