package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chromiumPath is Debian's chromium binary; scripts/test installs it.
const chromiumPath = "/usr/lib/chromium/chromium"

// axePath is axe-core as examples/demo/browser's lock file pins it;
// scripts/test runs npm ci there.
var axePath = filepath.Join("browser", "node_modules", "axe-core", "axe.min.js")

// browserTimeout bounds the whole browser test (Chromium start included).
const browserTimeout = 60 * time.Second

// startTestDemo starts the demo on ephemeral loopback ports; it stops
// when the test ends.
func startTestDemo(t *testing.T, idle time.Duration) *demo {
	t.Helper()
	var logs syncBuffer
	d, err := startDemo(t.Context(), options{
		Listen: "127.0.0.1:0", FHIRAddr: "127.0.0.1:0", DexAddr: "127.0.0.1:0",
		PolicyDir:   filepath.Join("..", "..", "configs", "policy"),
		IdleTimeout: idle,
		Logger:      slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, d.Close())
		if t.Failed() {
			t.Logf("demo logs:\n%s", logs.String())
		}
	})
	return d
}

// newChromium starts one headless Chromium for the test and returns a tab
// in it. A missing Chromium or axe-core fails the test: nothing is skipped.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	_, err := os.Stat(chromiumPath)
	require.NoError(t, err, "Chromium is missing: run scripts/test (it installs the Debian package chromium)")
	ctx, cancel := context.WithTimeout(t.Context(), browserTimeout)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Headless,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(ctx)
	t.Cleanup(cancelTab)
	return ctx
}

// axeViolation is one failed axe-core rule and the elements it failed on.
type axeViolation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"`
	Help    string   `json:"help"`
	Targets []string `json:"targets"`
}

type axeResult struct {
	Violations []axeViolation `json:"violations"`
	Passes     int            `json:"passes"`
}

// axeRun is the WCAG 2.1 A and AA rules, reduced to what a failure
// message needs (targets are JSON: a selector path may cross frames).
const axeRun = `axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
  .then(r => ({
    passes: r.passes.length,
    violations: r.violations.map(v => ({id: v.id, impact: v.impact || '', help: v.help,
      targets: v.nodes.map(n => JSON.stringify(n.target))})),
  }))`

// runAxe injects axe-core into the current page and runs it.
func runAxe(t *testing.T, ctx context.Context, axe string) axeResult {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](axe)), "inject axe-core")
	res, err := chromedp.Run(ctx, chromedp.Evaluate[axeResult](axeRun, chromedp.EvalAwaitPromise))
	require.NoError(t, err, "axe.run")
	return res
}

// assertAccessible asserts axe-core finds no WCAG 2.1 A/AA violation on
// the current page.
func assertAccessible(t *testing.T, ctx context.Context, axe string) {
	t.Helper()
	res := runAxe(t, ctx, axe)
	var report strings.Builder
	for _, v := range res.Violations {
		fmt.Fprintf(&report, "\n  %s (%s): %s\n    on %s", v.ID, v.Impact, v.Help, strings.Join(v.Targets, ", "))
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	assert.Empty(t, res.Violations, "axe-core WCAG 2.1 A/AA violations on %s:%s", loc, report.String())
	assert.Positive(t, res.Passes, "axe-core checked nothing on %s", loc)
}

// bodyText is the text of the current page.
func bodyText(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
	require.NoError(t, err)
	return s
}

// TestBrowser drives ChartGuard's pages in headless Chromium: sign-in
// through Dex, sign-out with the keyboard alone, and a failed sign-in,
// checking every ChartGuard page with axe-core.
func TestBrowser(t *testing.T) {
	t.Parallel()
	axe, err := os.ReadFile(axePath)
	require.NoError(t, err, "axe-core is missing: run scripts/test (it runs npm ci in examples/demo/browser)")
	ctx := newChromium(t)
	d := startTestDemo(t, 0)

	// Subtests share the tab and its cookies, so they run in order.
	t.Run("axe-core reports violations", func(t *testing.T) { testAxeCatches(t, ctx, string(axe)) })
	t.Run("sign-in page", func(t *testing.T) { testBrowserSignInPage(t, ctx, d, string(axe)) })
	if !t.Run("sign-in through Dex", func(t *testing.T) { testBrowserSignIn(t, ctx, d) }) {
		t.FailNow()
	}
	t.Run("access denied page", func(t *testing.T) { testBrowserDenied(t, ctx, d, string(axe)) })
	t.Run("sign out with the keyboard", func(t *testing.T) { testBrowserLogout(t, ctx, d, string(axe)) })
	t.Run("login failure page", func(t *testing.T) { testBrowserLoginFailed(t, ctx, d, string(axe)) })
}

// testAxeCatches proves the harness: a page with an unlabelled image and
// an unlabelled field does fail.
func testAxeCatches(t *testing.T, ctx context.Context, axe string) {
	const page = `data:text/html,<!doctype html><html lang="en"><title>bad</title><main><img src="x.png"><input type="text"></main></html>`
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(page)))
	var ids []string
	for _, v := range runAxe(t, ctx, axe).Violations {
		ids = append(ids, v.ID)
	}
	assert.Contains(t, ids, "image-alt")
	assert.Contains(t, ids, "label")
}

// testBrowserSignInPage opens the sign-in interstitial in a tab of its own
// and intercepts the navigation its refresh starts (Fetch interception):
// it must go to Dex, and answered with 204 it leaves the page up for
// axe-core.
func testBrowserSignInPage(t *testing.T, browser context.Context, d *demo, axe string) {
	ctx, cancel := chromedp.NewContext(browser)
	defer cancel()
	_, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: d.IdP.Issuer + "/*"}}})
	require.NoError(t, err)
	wait, stop := context.WithTimeout(ctx, 15*time.Second)
	defer stop()
	paused := chromedp.Events(wait, fetch.RequestPaused)

	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(d.URL+"/.chartguard/login?rd=%2Ffhir%2FPatient%2Fp1"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, int(resp.Status))
	var held fetch.EventRequestPaused
	for ev, err := range paused {
		require.NoError(t, err, "the page never moved on to Dex")
		held = ev
		break
	}
	assert.True(t, strings.HasPrefix(held.Request.URL, d.IdP.Issuer+"/auth?"), "refresh went to %s", held.Request.URL)
	// A navigation answered 204 No Content leaves the current document in
	// place: the sign-in page stays up for the checks below.
	_, err = chromedp.Call(ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{RequestID: held.RequestID,
		ResponseCode: http.StatusNoContent})
	require.NoError(t, err)
	text := bodyText(t, ctx)
	assert.Contains(t, text, "Sign in to continue")
	assert.Contains(t, text, "Continue to sign in")
	assertAccessible(t, ctx, axe)
}

func testBrowserSignIn(t *testing.T, ctx context.Context, d *demo) {
	physician, ok := d.IdP.User("physician")
	require.True(t, ok)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(d.URL+"/fhir/Patient/p1"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="login"]`)))) // through the sign-in page
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(loc, d.IdP.Issuer+"/"), "signed out: sent to Dex, not %s", loc)

	resp, err := chromedp.RunResponse(ctx,
		chromedp.SendKeys(chromedp.CSS(`input[name="login"]`), physician.Email),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), physician.Password),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
	)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, int(resp.Status))
	assert.Equal(t, d.URL+"/fhir/Patient/p1", resp.URL, "back where the sign-in started")
	assert.Equal(t, "p1", patientID(t, bodyText(t, ctx)))
}

// testBrowserDenied: p2 is not on the physician's care team; the page
// load gets ChartGuard's access-denied page with the policy's reason.
func testBrowserDenied(t *testing.T, ctx context.Context, d *demo, axe string) {
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(d.URL+"/fhir/Patient/p2"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusForbidden, int(resp.Status))
	text := bodyText(t, ctx)
	assert.Contains(t, text, "care team")
	assert.Contains(t, text, "Sign out")
	assert.NotContains(t, text, `"resourceType"`)
	assertAccessible(t, ctx, axe)
}

func testBrowserLogout(t *testing.T, ctx context.Context, d *demo, axe string) {
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(d.URL+"/.chartguard/logout"))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, int(resp.Status))
	require.Contains(t, bodyText(t, ctx), "Sign out of ChartGuard?", "signed in: the confirm page")
	assertAccessible(t, ctx, axe)

	// Keyboard alone: Tab to the sign-out button, Enter.
	const isButton = `(e => e instanceof HTMLButtonElement && e.type === 'submit' && e.form && e.form.action.endsWith('/.chartguard/logout'))(document.activeElement)`
	focused := false
	for range 20 {
		require.NoError(t, chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)))
		focused, err = chromedp.Run(ctx, chromedp.Evaluate[bool](isButton))
		require.NoError(t, err)
		if focused {
			break
		}
	}
	require.True(t, focused, "Tab never reached the sign-out button")
	resp, err = chromedp.RunResponse(ctx, chromedp.KeyEvent(kb.Enter))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, int(resp.Status))
	assert.Equal(t, d.URL+"/.chartguard/logout", resp.URL)
	assert.Contains(t, bodyText(t, ctx), "You have signed out of ChartGuard")
	assertAccessible(t, ctx, axe)

	resp, err = chromedp.Run(ctx, chromedp.NavigateResponse(d.URL+"/.chartguard/session"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, int(resp.Status), "the session ended")
}

func testBrowserLoginFailed(t *testing.T, ctx context.Context, d *demo, axe string) {
	q := url.Values{"state": {"bogus"}, "code": {"x"}}
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(d.URL+"/.chartguard/callback?"+q.Encode()))
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, int(resp.Status), "a bogus callback is refused")
	text := bodyText(t, ctx)
	assert.Contains(t, text, "Sign-in did not work")
	assert.Contains(t, text, "Try signing in again")
	assertAccessible(t, ctx, axe)
}

// TestIdleTimeoutRealTime lets a real session sit idle past a 2s idle
// timeout: a page load then shows the logged-off page, and a form post
// says it was not saved.
func TestIdleTimeoutRealTime(t *testing.T) {
	t.Parallel()
	const idle = 2 * time.Second
	d := startTestDemo(t, idle)
	physician, ok := d.IdP.User("physician")
	require.True(t, ok)
	b := signIn(t, d, physician)
	resp, body := b.navigate(d.URL + "/fhir/Patient/p1")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	u, err := url.Parse(d.URL)
	require.NoError(t, err)
	cookies := b.c.Jar.Cookies(u)
	require.NotEmpty(t, cookies, "signed in: a session cookie")

	select { // the idle period itself is what is under test
	case <-time.After(idle + time.Second):
	case <-t.Context().Done():
		t.Fatal("test ended while idle")
	}

	resp, body = b.navigate(d.URL + "/fhir/Patient/p1")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the logged-off page is a 200")
	assert.Contains(t, body, "Sign in")
	assert.Contains(t, body, "no activity")
	assert.NotContains(t, body, `"resourceType":"Patient"`)

	// A form left open in another tab, posted with the old cookie (the
	// page load above deleted it from this jar).
	b.c.Jar.SetCookies(u, cookies)
	resp, body = b.post(d.URL+"/fhir/Patient", url.Values{"note": {"x"}})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, body)
	assert.Contains(t, body, "not saved")
}
