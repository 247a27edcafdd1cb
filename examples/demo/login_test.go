package main

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/examples/demo/dex"
)

// browser is a stand-in for a browser: it keeps cookies and follows no
// redirect on its own, so the test sees every step of the sign-in.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 30 * time.Second, // a guard against hangs only
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// navigate loads u as a top-level page would be.
func (b *browser) navigate(u string) (*http.Response, string) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(b.t, err)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) (*http.Response, string) {
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	return b.do(req)
}

// api calls u as a script would (no navigation).
func (b *browser) api(u string) (*http.Response, string) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(b.t, err)
	req.Header.Set("Accept", "application/fhir+json")
	return b.do(req)
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return resp, string(body)
}

// location is the absolute redirect target of resp.
func location(t *testing.T, resp *http.Response) *url.URL {
	t.Helper()
	u, err := resp.Location()
	require.NoError(t, err, "no Location on %d from %s", resp.StatusCode, resp.Request.URL)
	return u
}

// refresh finds the sign-in interstitial's zero-delay refresh target.
var refresh = regexp.MustCompile(`<meta http-equiv="refresh" content="0; url=([^"]+)"/>`)

// interstitialTarget checks that ChartGuard answered the sign-in start with
// its interstitial page, and returns where that page sends the browser:
// the refresh a browser follows and the "Continue to sign in" link agree.
func interstitialTarget(t *testing.T, resp *http.Response, page string) *url.URL {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.StatusCode, "login start")
	require.Contains(t, page, "Continue to sign in")
	m := refresh.FindStringSubmatch(page)
	require.Len(t, m, 2, "no refresh on the sign-in page")
	assert.Contains(t, page, `href="`+m[1]+`"`)
	u, err := url.Parse(html.UnescapeString(m[1]))
	require.NoError(t, err)
	return u
}

// startSignIn opens /fhir/Patient/p1 signed out and follows ChartGuard's
// redirects and sign-in page into Dex, up to its password form, whose URL it returns.
func startSignIn(t *testing.T, d *demo, b *browser) string {
	t.Helper()
	resp, _ := b.navigate(d.URL + "/fhir/Patient/p1")
	require.Equal(t, http.StatusFound, resp.StatusCode, "signed-out navigation")
	login := location(t, resp)
	assert.Equal(t, d.URL+"/.chartguard/login", login.Scheme+"://"+login.Host+login.Path)
	assert.Equal(t, "/fhir/Patient/p1", login.Query().Get("rd"))

	resp, page := b.navigate(login.String())
	next := interstitialTarget(t, resp, page)
	require.True(t, strings.HasPrefix(next.String(), d.IdP.Issuer+"/auth?"), "login went to %s", next)
	assert.Equal(t, "S256", next.Query().Get("code_challenge_method"))
	assert.Equal(t, d.URL+"/.chartguard/callback", next.Query().Get("redirect_uri"))

	// Dex: /auth → /auth/local → /auth/local/login (the form).
	for range 5 {
		resp, _ = b.navigate(next.String())
		if resp.StatusCode != http.StatusFound {
			break
		}
		next = location(t, resp)
		require.True(t, strings.HasPrefix(next.String(), d.IdP.Issuer+"/"), "left Dex for %s", next)
	}
	require.Equal(t, http.StatusOK, resp.StatusCode, "Dex login form")
	require.True(t, strings.HasSuffix(next.Path, "/auth/local/login"), "login form at %s", next.Path)
	return next.String()
}

// signIn runs the whole sign-in as user and returns the browser, signed in
// and back on /fhir/Patient/p1's URL.
func signIn(t *testing.T, d *demo, user dex.User) *browser {
	t.Helper()
	b := newBrowser(t)
	form := startSignIn(t, d, b)
	resp, _ := b.post(form, url.Values{"login": {user.Email}, "password": {user.Password}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "password accepted")
	next := location(t, resp)
	for range 5 { // inside Dex (approval is skipped) until it leaves for the callback
		if !strings.HasPrefix(next.String(), d.IdP.Issuer+"/") {
			break
		}
		resp, _ = b.navigate(next.String())
		require.Contains(t, []int{http.StatusFound, http.StatusSeeOther}, resp.StatusCode)
		next = location(t, resp)
	}
	require.Equal(t, d.URL+"/.chartguard/callback", next.Scheme+"://"+next.Host+next.Path)
	require.NotEmpty(t, next.Query().Get("code"))

	resp, body := b.navigate(next.String())
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "callback: %s", body)
	back := location(t, resp)
	require.Equal(t, d.URL+"/fhir/Patient/p1", back.String())
	return b
}

func patientID(t *testing.T, body string) string {
	t.Helper()
	var p struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &p), body)
	require.Equal(t, "Patient", p.ResourceType)
	return p.ID
}

var csrfField = regexp.MustCompile(`<input type="hidden" name="csrf" value="([^"]+)"`)

func testSignIn(t *testing.T, d *demo) {
	t.Parallel()
	physician, ok := d.IdP.User("physician")
	require.True(t, ok)
	b := signIn(t, d, physician)

	resp, body := b.navigate(d.URL + "/fhir/Patient/p1")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "p1", patientID(t, body))

	resp, body = b.api(d.URL + "/fhir/Patient/p2")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "p2 is not on pr1's care team: %s", body)
	assert.NotContains(t, body, `"id":"p2"`)

	resp, body = b.api(d.URL + "/.chartguard/session")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var sess struct {
		User      string `json:"user"`
		ExpiresIn int    `json:"expires_in"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &sess), body)
	assert.Equal(t, "Demo physician", sess.User)
	assert.Positive(t, sess.ExpiresIn)

	// Sign out with the form's CSRF token.
	resp, body = b.navigate(d.URL + "/.chartguard/logout")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	m := csrfField.FindStringSubmatch(body)
	require.NotNil(t, m, "no csrf field on the logout page: %s", body)
	resp, body = b.post(d.URL+"/.chartguard/logout", url.Values{"csrf": {"wrong"}})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "logout with a wrong CSRF token: %s", body)
	resp, body = b.post(d.URL+"/.chartguard/logout", url.Values{"csrf": {html.UnescapeString(m[1])}})
	if end := endSessionEndpoint(t, d); end != "" {
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
		assert.True(t, strings.HasPrefix(location(t, resp).String(), end), "logout went to %s", location(t, resp))
	} else {
		require.Equal(t, http.StatusOK, resp.StatusCode, "logged-off page: %s", body)
	}

	resp, _ = b.navigate(d.URL + "/fhir/Patient/p1")
	require.Equal(t, http.StatusFound, resp.StatusCode, "signed out: back to sign-in")
	assert.Equal(t, "/.chartguard/login", location(t, resp).Path)
	resp, _ = b.api(d.URL + "/.chartguard/session")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// endSessionEndpoint is Dex's end_session_endpoint, "" if it offers none.
func endSessionEndpoint(t *testing.T, d *demo) string {
	t.Helper()
	resp, err := http.Get(d.IdP.Issuer + "/.well-known/openid-configuration")
	require.NoError(t, err)
	defer resp.Body.Close()
	var doc struct {
		EndSession string `json:"end_session_endpoint"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	return doc.EndSession
}

func testWrongPassword(t *testing.T, d *demo) {
	t.Parallel()
	physician, ok := d.IdP.User("physician")
	require.True(t, ok)
	b := newBrowser(t)
	form := startSignIn(t, d, b)
	resp, _ := b.post(form, url.Values{"login": {physician.Email}, "password": {physician.Password + "x"}})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "Dex refuses the password")
	assert.Empty(t, resp.Header.Get("Location"))

	resp, _ = b.api(d.URL + "/.chartguard/session")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no session")
	resp, _ = b.navigate(d.URL + "/fhir/Patient/p1")
	assert.Equal(t, http.StatusFound, resp.StatusCode, "still sent to sign in")
	resp, body := b.api(d.URL + "/fhir/Patient/p1")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.NotContains(t, body, `"resourceType":"Patient"`)
}
