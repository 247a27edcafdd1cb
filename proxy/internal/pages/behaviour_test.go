package pages

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// refusedLinks are link targets that must never be rendered.
var refusedLinks = map[string]string{
	"empty":              "",
	"absolute URL":       "https://evil.example/login",
	"protocol-relative":  "//evil.example/login",
	"backslash host":     `/\evil.example`,
	"backslash later":    `/a\b`,
	"javascript":         "javascript:alert(1)",
	"relative":           "login",
	"space":              "/a b",
	"newline":            "/a\nb",
	"NUL":                "/a\x00",
	"non-ASCII":          "/é",
	"too long":           "/" + strings.Repeat("a", maxPathLen),
	"bad escape":         "/%zz",
	"data URL":           "data:text/html,hi",
	"scheme-less colon":  "x:/y",
	"triple slash":       "///evil.example",
	"tab after slash":    "/\t/evil.example",
	"whitespace leading": " /login",
}

func mainLinks(t *testing.T, doc *node) []*node {
	t.Helper()
	return doc.one(t, "main").all("a")
}

func TestLoggedOff(t *testing.T) {
	p := newPages(t)
	tests := []struct {
		reason string
		want   string
	}{
		{"idle", "no activity"},
		{"absolute", "maximum length"},
		{"logout", "You have signed out"},
		{"something else", "session has ended"},
		{"", "session has ended"},
	}
	for _, tc := range tests {
		t.Run("reason="+tc.reason, func(t *testing.T) {
			w, doc := serve(t, p, func(p *Pages, w http.ResponseWriter, d Data) { p.LoggedOff(w, d, tc.reason, signInPath) }, signedOut)
			assert.Equal(t, http.StatusOK, w.Code)
			assert.Contains(t, doc.one(t, "h1").Text(), "signed out")
			assert.Contains(t, doc.one(t, "main").Text(), tc.want)
			links := mainLinks(t, doc)
			require.Len(t, links, 1)
			assert.Equal(t, signInPath, links[0].Attr["href"])
			assert.Contains(t, links[0].Text(), "Sign in")
		})
	}
}

func TestLoggedOffRefusesForeignSignInURL(t *testing.T) {
	p := newPages(t)
	for name, target := range refusedLinks {
		t.Run(name, func(t *testing.T) {
			w, doc := serve(t, p, func(p *Pages, w http.ResponseWriter, d Data) { p.LoggedOff(w, d, "idle", target) }, signedOut)
			assert.Equal(t, http.StatusOK, w.Code)
			assert.Empty(t, mainLinks(t, doc))
			assert.NotContains(t, w.Body.String(), "evil.example")
			assert.Contains(t, doc.one(t, "main").Text(), "open the EMR again")
		})
	}
}

func TestSubmissionNotSaved(t *testing.T) {
	p := newPages(t)
	w, doc := serve(t, p, func(p *Pages, w http.ResponseWriter, d Data) { p.SubmissionNotSaved(w, d, signInPath) }, signedOut)
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Contains(t, doc.one(t, "h1").Text(), "not saved")
	assert.Contains(t, doc.one(t, "main").Text(), "Nothing was saved")
	links := mainLinks(t, doc)
	require.Len(t, links, 1)
	a := links[0]
	assert.Equal(t, signInPath, a.Attr["href"])
	assert.Equal(t, "_blank", a.Attr["target"])
	assert.Contains(t, strings.Fields(a.Attr["rel"]), "noopener")
	assert.Contains(t, a.Text(), "new tab", "the new tab is announced, not a surprise")
	assert.Empty(t, doc.all("form"), "nothing on this page may re-submit")

	for name, target := range refusedLinks {
		t.Run("refused "+name, func(t *testing.T) {
			w, doc := serve(t, p, func(p *Pages, w http.ResponseWriter, d Data) { p.SubmissionNotSaved(w, d, target) }, signedOut)
			assert.Equal(t, http.StatusUnauthorized, w.Code)
			assert.Empty(t, mainLinks(t, doc))
			assert.Contains(t, doc.one(t, "h1").Text(), "not saved")
		})
	}
}

func TestAccessDenied(t *testing.T) {
	p := newPages(t)
	tests := []struct {
		name    string
		reasons []string
		want    []string
	}{
		{"none", nil, nil},
		{"one", []string{"Not your patient."}, []string{"Not your patient."}},
		{"blank ones dropped", []string{" ", "Outside your unit.", "\t"}, []string{"Outside your unit."}},
		{"control characters", []string{"a\x00b\nc"}, []string{"a\uFFFDb c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, doc := serve(t, p, func(p *Pages, w http.ResponseWriter, d Data) { p.AccessDenied(w, d, tc.reasons) }, signedIn)
			assert.Equal(t, http.StatusForbidden, w.Code)
			var got []string
			for _, li := range doc.one(t, "main").all("li") {
				got = append(got, li.Text())
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestError(t *testing.T) {
	p := newPages(t)
	tests := []struct {
		name       string
		status     int
		message    string
		wantStatus int
		wantText   string
	}{
		{"bad gateway", 502, "The EMR did not answer.", 502, "The EMR did not answer."},
		{"not found", 404, "No such page.", 404, "No such page."},
		{"empty message uses status text", 503, "", 503, "Service Unavailable."},
		{"success status refused", 200, "ok", 500, "ok"},
		{"redirect status refused", 302, "", 500, "Internal Server Error."},
		{"out of range", 999, "x", 500, "x"},
		{"negative", -1, "x", 500, "x"},
		{"unnamed 4xx", 499, "", 499, "Error 499."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, doc := serve(t, p, func(p *Pages, w http.ResponseWriter, d Data) { p.Error(w, d, tc.status, tc.message) }, signedOut)
			assert.Equal(t, tc.wantStatus, w.Code)
			assert.Contains(t, doc.one(t, "main").Text(), tc.wantText)
			assert.Contains(t, doc.one(t, "main").Text(), "Status: "+strconv.Itoa(tc.wantStatus))
		})
	}
}

func TestLogoutConfirm(t *testing.T) {
	p := newPages(t)
	t.Run("signed in", func(t *testing.T) {
		w, doc := serve(t, p, func(p *Pages, w http.ResponseWriter, d Data) { p.LogoutConfirm(w, d) }, signedIn)
		assert.Equal(t, http.StatusOK, w.Code)
		f := doc.one(t, "main").one(t, "form")
		assert.Equal(t, "post", f.Attr["method"])
		assert.Equal(t, LogoutPath, f.Attr["action"])
		in := f.one(t, "input")
		assert.Equal(t, CSRFField, in.Attr["name"])
		assert.Equal(t, signedIn.CSRF, in.Attr["value"])
		assert.Contains(t, f.one(t, "button").Text(), "Sign out")
	})
	t.Run("signed out", func(t *testing.T) {
		_, doc := serve(t, p, func(p *Pages, w http.ResponseWriter, d Data) { p.LogoutConfirm(w, d) }, signedOut)
		assert.Contains(t, doc.one(t, "h1").Text(), "not signed in")
		assert.Empty(t, doc.all("form"))
	})
}

func TestLoginFailed(t *testing.T) {
	p := newPages(t)
	t.Run("with try again", func(t *testing.T) {
		w, doc := serve(t, p, func(p *Pages, w http.ResponseWriter, d Data) {
			p.LoginFailed(w, d, "Your account has no role in ChartGuard.", "/.chartguard/login")
		}, signedOut)
		assert.Equal(t, http.StatusUnauthorized, w.Code)
		assert.Contains(t, doc.one(t, "main").Text(), "no role in ChartGuard")
		links := mainLinks(t, doc)
		require.Len(t, links, 1)
		assert.Equal(t, "/.chartguard/login", links[0].Attr["href"])
	})
	t.Run("empty message", func(t *testing.T) {
		_, doc := serve(t, p, func(p *Pages, w http.ResponseWriter, d Data) { p.LoginFailed(w, d, "  ", "") }, signedOut)
		assert.Contains(t, doc.one(t, "main").Text(), "could not sign you in")
		assert.Empty(t, mainLinks(t, doc))
	})
	for name, target := range refusedLinks {
		t.Run("refused "+name, func(t *testing.T) {
			_, doc := serve(t, p, func(p *Pages, w http.ResponseWriter, d Data) { p.LoginFailed(w, d, "x", target) }, signedOut)
			assert.Empty(t, mainLinks(t, doc))
		})
	}
}

func TestClean(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"plain", "Dr. Ada", 10, "Dr. Ada"},
		{"trimmed", "  Ada \n", 10, "Ada"},
		{"invalid UTF-8", "a\xffb", 10, "a\uFFFDb"},
		{"control", "a\x07b", 10, "a\uFFFDb"},
		{"cut with ellipsis", "abcdefghij", 5, "abcd…"},
		{"exact length kept", "abcde", 5, "abcde"},
		{"multibyte cut on rune boundary", "ééééé", 3, "éé…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, clean(tc.in, tc.max))
		})
	}
}

func TestLocalPathAccepts(t *testing.T) {
	for _, s := range []string{"/", "/.chartguard/login", signInPath, "/a/b?c=d&e=f#g"} {
		assert.Equal(t, s, localPath(s))
	}
	for name, s := range refusedLinks {
		assert.Empty(t, localPath(s), name)
	}
}

func TestSignIn(t *testing.T) {
	p := newPages(t)
	t.Run("continues to the IdP", func(t *testing.T) {
		w, doc := serve(t, p, func(p *Pages, w http.ResponseWriter, d Data) { p.SignIn(w, d, idpAuthURL) }, signedOut)
		assert.Equal(t, http.StatusOK, w.Code)
		var refresh *node
		for _, m := range doc.one(t, "head").all("meta") {
			if m.Attr["http-equiv"] == "refresh" {
				refresh = m
			}
		}
		require.NotNil(t, refresh, "a zero-delay refresh sends the browser on without script")
		assert.Equal(t, "0; url="+idpAuthURL, refresh.Attr["content"])
		links := mainLinks(t, doc)
		require.Len(t, links, 1)
		assert.Equal(t, idpAuthURL, links[0].Attr["href"])
		assert.Contains(t, links[0].Text(), "Continue to sign in")
		assert.Contains(t, doc.one(t, "main").Text(), "idp.example.org")
	})
	refused := map[string]string{
		"script":     "javascript:alert(1)",
		"data":       "data:text/html,<script>alert(1)</script>",
		"relative":   "/auth?x=1",
		"no scheme":  "//idp.example.org/auth",
		"user info":  "https://user:pw@idp.example.org/auth",
		"other":      "ftp://idp.example.org/auth",
		"unparsable": "https://idp.example.org/%zz",
		"too long":   "https://idp.example.org/auth?x=" + strings.Repeat("a", maxAuthURLLen),
		"empty":      "",
	}
	for name, target := range refused {
		t.Run("refused "+name, func(t *testing.T) {
			w, doc := serve(t, p, func(p *Pages, w http.ResponseWriter, d Data) { p.SignIn(w, d, target) }, signedOut)
			assert.Equal(t, http.StatusInternalServerError, w.Code)
			for _, m := range doc.all("meta") {
				assert.NotEqual(t, "refresh", m.Attr["http-equiv"])
			}
			assert.Empty(t, mainLinks(t, doc))
			assert.NotContains(t, w.Body.String(), "alert(1)")
		})
	}
}
