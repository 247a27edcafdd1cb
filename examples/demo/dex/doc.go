// Package dex runs Dex (github.com/dexidp/dex) in-process as the OIDC
// provider of the ChartGuard demo: a real authorization server with a login
// form, so the demo and its end-to-end tests exercise the browser flow
// (authorization code + PKCE) that production identity providers use.
// It is DEVELOPMENT ONLY and lives in the examples/demo module so that Dex
// never enters the product's go.mod.
//
// [Start] serves Dex on loopback only, issuer "http://<addr>/dex", with
//
//   - one confidential client, "chartguard", with a random secret and the
//     redirect URI of [Options.RedirectURL]; only the authorization code
//     and refresh token grants, and PKCE with S256 required;
//   - one static password user per default ChartGuard role ([Roles]):
//     email <role>@demo.chartguard.example, group "chartguard-<role>", and
//     a random password made at start and returned in [IdP.Users];
//   - in-memory storage, an in-memory RSA signing key and no approval
//     screen. Everything dies with [IdP.Close].
//
// Dex puts groups in the ID token only when the client asks for the
// "groups" scope, and its "sub" claim is opaque (an encoded user id and
// connector id): use "email" for display. Dex cannot add custom claims, so
// the fhirUser of the physician and the nurse is only recorded in
// [User.FHIRUser]; the proxy maps it.
//
// # Trust boundary
//
// Anyone who can reach the listener can try the demo passwords, which are
// printed by the demo; that is why it listens on loopback only (see
// [ListenLoopback]). Dex's own log lines may name the synthetic demo users
// (for example on a failed login); they never carry real people.
//
// # Out of scope
//
// TLS, persistence, key rotation, other connectors (LDAP, upstream OIDC),
// MFA, Dex's gRPC API and custom claims.
package dex
