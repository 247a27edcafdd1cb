// Package pages renders the few HTML pages ChartGuard itself shows in a
// browser: signed out ([Pages.LoggedOff]), a submission that arrived on an
// expired session ([Pages.SubmissionNotSaved]), access denied
// ([Pages.AccessDenied]), a generic error ([Pages.Error]), the sign-out
// confirmation ([Pages.LogoutConfirm]), a failed sign-in
// ([Pages.LoginFailed]) and the sign-in interstitial that sends the browser
// on to the identity provider ([Pages.SignIn]).
//
// The pages are for clinicians under time pressure: one plain heading that
// says what happened, one sentence on what to do next, and a reference
// (the request ID) for the help desk. They follow WCAG 2.1 A/AA: lang,
// title, one h1, landmarks, visible focus, AA contrast, labelled controls,
// buttons for every POST, fully usable by keyboard. Every page a signed-in
// user sees carries a "Sign out" button (a POST to /.chartguard/logout with
// the CSRF token).
//
// Templates are embedded and parsed once by [New]; there are no external
// assets and no JavaScript. Every response is no-store and carries a strict
// Content-Security-Policy whose only allowance is the hash of the one inline
// style sheet.
//
// # Trust boundary
//
// Everything in [Data] and every message or reason string is treated as
// untrusted text: html/template escapes it by context, invalid UTF-8 is
// replaced, and each value is cut to a fixed length so no page can grow past
// 30 KB. Link targets (sign-in, try-again) must be local absolute paths
// ("/..."); anything else — a scheme, a host, "//", a backslash, a control
// character — is refused and the page renders without the link, so a
// crafted value can never turn these pages into an open redirect. The one
// exception is the sign-in interstitial's target, the identity provider's
// authorization URL, which the proxy builds from configuration; it must be
// an absolute http(s) URL (see [Pages.SignIn]).
//
// # Out of scope
//
// Deciding which page to show, the HTTP status of the surrounding flow,
// sessions, CSRF token creation and checking, auditing and logging: those
// belong to the proxy pipeline. The break-glass and MFA pages live with
// their flows.
package pages
