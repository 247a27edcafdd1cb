// Package authn establishes who is calling ChartGuard and returns it as a
// [chartguard.Principal].
//
// An [Authenticator] has one method. [Bearer] is the implementation for API
// clients (SMART and backend apps): it verifies the JWT access token in
// "Authorization: Bearer …" against the IdP's published keys. Browser SSO
// with sessions and TOTP will be a second Authenticator behind the same
// seam; [AuthenticatorFunc] adapts plain functions for tests. An
// [Asserter] then vouches for the caller to the upstream (see "Identity
// assertion").
//
// # Trust boundary
//
// Everything in the request is untrusted. Trusted are the configuration
// ([Config], validated once) and the IdP's discovery document and JWKS,
// fetched over https (http only on loopback) from the configured issuer or
// jwks_url. A token is accepted only if all of these hold:
//
//   - exactly one Authorization header, scheme Bearer, at most
//     [MaxTokenBytes];
//   - a compact JWS signed with an algorithm from oidc.signing_algs (never
//     from discovery; never HMAC or "none") by a public key in the JWKS
//     (go-oidc's verifier with this package's key set);
//   - iss equal to oidc.issuer and aud containing oidc.audience;
//   - exp present and not past, nbf and iat (when present) not in the
//     future, each with oidc.clock_skew;
//   - an access token, not an ID token: no nonce or at_hash claim, and a
//     JOSE typ, if any, of JWT, at+jwt or application/at+jwt;
//   - a non-empty sub, and an email (display only) with at most one "@";
//   - not refused by the [Config.Revoked] hook.
//
// A user is iss+sub. Roles come from oidc.roles_claim mapped exactly through
// oidc.role_map; unmapped groups give no role.
//
// # Caches
//
// The IdP is discovered lazily and its keys cached: refreshed after 15
// minutes, refetched early for an unknown key id, never more than once per
// 5 seconds. Verified tokens are cached by SHA-256 (never the token
// itself) for at most min(exp, 5 minutes); exp and the revocation hook are
// checked again on every hit.
//
// # Identity assertion
//
// [Asserter] tells the upstream who the caller is: an ES256 JWT (RFC 7515,
// 7519) in assertion.header with iss (ChartGuard's public URL), aud (the
// upstream's base URL), sub and idp (the caller's iss+sub), name, email,
// roles, fhir_user, sid (the session hash, never the session id), a
// random 128-bit jti, iat and exp = iat + assertion.ttl (at most 5
// minutes). The header kid is the signing key's RFC 7638 thumbprint.
// One assertion is reused for the same session, upstream and identity
// while it is at most 30 seconds old.
//
// The keys are trusted as configured: assertion.signing_key_file, an EC
// P-256 private key readable by its owner only, signs;
// assertion.previous_key_file, the retired key during a rotation, is only
// published. [Asserter.JWKS] is the set to serve at [JWKSPath]. Upstreams
// must verify with ES256 only, take the key by kid from that set, and
// check iss, aud and exp; the proxy must drop any incoming header named
// [Asserter.Header] before setting its own.
//
// # Browser login
//
// [Login] is the OpenID Connect relying party (OIDC Core 1.0 §3.1,
// RFC 7636): [Login.Start] builds the authorization URL (code flow, PKCE
// S256, random 256-bit state, nonce and verifier, oidc.scopes, max_age when
// set, never prompt) and a [LoginRequest] the proxy keeps server-side;
// [Login.Finish] redeems the code with the verifier over a client that
// never follows redirects, then verifies the ID token like a bearer token
// (same key set, algorithms, iss, times and claim mapping) plus aud
// containing oidc.client_id, azp, nonce, at_hash when present, and
// auth_time against oidc.max_age. The ID token's nonce and at_hash are the
// only reason it passes the mapping that refuses ID tokens as bearer
// tokens. Every failure matches [ErrLogin] with a fixed reason; a user with
// no mapped role gets [ErrNoRole]. Discovery (endpoints, including
// end_session_endpoint for [Login.EndSessionURL]) is lazy and throttled
// like the keys, so ChartGuard starts while the IdP is down. Matching the
// callback's state to the kept request, single use, and binding it to the
// browser are the proxy's job.
//
// # Out of scope
//
// Sessions, MFA, token introspection (RFC 7662), and SMART
// scope enforcement (policy decides on [chartguard.Token.Scopes]). Errors
// and logs never carry the token, the subject or the email.
//
// Specs: RFC 6750 (bearer usage, WWW-Authenticate), RFC 7519 (JWT),
// RFC 9068 (JWT access tokens), OpenID Connect Discovery 1.0, RFC 7517
// and RFC 7638 (JWK Set, thumbprints).
package authn
