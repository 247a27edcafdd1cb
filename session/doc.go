// Package session owns ChartGuard's server-side browser sessions: the
// [Session] model, the [Store] seam with an in-process [Memory] store, and
// the [Manager], which issues sessions at login, looks them up on every
// request and ends them at logout.
//
// # Lifetime
//
// A session ends [Config.IdleTimeout] after the last user activity (or the
// first matching [Config.IdleTimeoutByNetwork] entry for its login
// address) and [Config.AbsoluteTimeout] after login, whichever comes first.
// Only user activity extends it: requests whose path matches a
// [Config.Background] pattern and polls of [SessionEndpoint] do not, so an
// unattended screen that auto-refreshes still times out. Activity is kept
// in the Manager's memory at once and written to the store behind by
// [Manager.Flush], which the caller runs every [Config.ActivityFlush]
// (a lookup writes through only when the store's copy is a whole period
// old); expiry is always decided with the pending activity included. Expired
// sessions are deleted when next presented; [Memory.Sweep] forgets the rest.
// Nothing here starts a goroutine.
//
// # Trust boundary
//
// The session id (the cookie value) is a bearer secret: 256 bits from
// crypto/rand (or the injected [Config.Rand]), unpadded base64url. Whoever
// presents it is the user until it expires or is ended. It is never logged,
// printed or audited: [Hash] names it in audit events (user.session) and
// logs, and [Session] formats and logs itself as that hash. The ID token
// hint and the CSRF secret are secrets of the same kind. Presented ids are
// untrusted: anything that is not exactly [IDLen] canonical base64url
// characters is refused as [ErrMalformedID] before the store is asked.
// Every login gets a fresh id ([Manager.New]); ids are never reused or
// accepted from the client at login. Map lookup of a 256-bit random id is
// not timing-sensitive: learning a prefix of a stored id does not help
// guess the rest.
//
// Trusted: the configuration (validated once), the clock, and the identity
// handed to [Manager.New] (verified by authn before the call).
//
// # Out of scope
//
// Cookies, CSRF tokens, HTTP and the login flow belong to the proxy; MFA
// verification to authn. The file and redis stores, session limits
// (session.max_sessions, session.on_limit) and the at-rest encryption key
// (session.key_file) come next, behind the same [Store] interface.
package session
