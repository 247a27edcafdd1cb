// Package devissuer is a DEVELOPMENT-ONLY token issuer for ChartGuard's demo
// and tests. It mints RS256 access tokens for any role or subject anyone asks
// for, without a password: whoever can reach it can become anyone.
//
//   - Never part of the chartguard binary, and never configured as the
//     issuer of a real deployment.
//   - Loopback only: serve it through [ListenLoopback], which refuses every
//     address outside 127.0.0.0/8 and ::1.
//   - Keys live in memory and die with the process.
//
// # Endpoints (relative to the path of [Options.Issuer])
//
//   - GET /.well-known/openid-configuration: issuer, jwks_uri,
//     token_endpoint, id_token_signing_alg_values_supported ["RS256"].
//   - GET /jwks: the public key (JWK Set, kid = RFC 7638 thumbprint).
//   - POST /dev/token?role=ROLE[&sub=…][&fhir_user=Practitioner/pr1]
//     [&client_id=…][&scope=…][&ttl=60s][&name=…][&email=…]
//     and the test knobs exp_offset, nbf_offset, typ, nonce and aud
//     (see [TokenRequest]); parameters may also come as a form body.
//     Answers {"access_token","token_type":"Bearer","expires_in"}; bad,
//     unknown or repeated parameters get 400 {"error":"invalid_request"}.
//
// Tokens follow RFC 9068 (JWT access tokens): header alg RS256, typ at+jwt
// and kid; claims iss, sub, aud, exp, iat, nbf, jti, client_id, scope,
// groups ["chartguard-ROLE"], name, email and fhirUser.
//
// # Out of scope
//
// Browser flows (no authorization endpoint), refresh tokens, client
// authentication, key rotation and persistence. Use Dex (examples/demo) for
// an interactive login.
package devissuer
