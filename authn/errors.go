package authn

import (
	"errors"
	"fmt"
)

// Reasons a token is refused. Each is wrapped together with
// [ErrInvalidCredentials]; the text is fixed so it can be logged and
// audited, and never contains token bytes or claim values.
var (
	errMultipleHeaders = errors.New("more than one Authorization header")
	errNotBearer       = errors.New("not a Bearer credential")
	errTooLarge        = errors.New("token too large")
	errMalformed       = errors.New("malformed token or signing algorithm not allowed")
	errTokenType       = errors.New("JOSE typ is not an access token type")
	errIDToken         = errors.New("ID token presented as access token")
	errUnknownKey      = errors.New("signing key not in the IdP key set")
	errBadSignature    = errors.New("signature does not verify")
	errIssuer          = errors.New("issuer mismatch")
	errAudience        = errors.New("audience mismatch")
	errClaims          = errors.New("claims malformed")
	errMissingExp      = errors.New("exp missing")
	errExpired         = errors.New("token expired")
	errNotYetValid     = errors.New("token not yet valid")
	errIssuedInFuture  = errors.New("token issued in the future")
	errMissingSub      = errors.New("sub missing")
	errEmail           = errors.New("email malformed")
	errRevoked         = errors.New("token revoked")
)

// invalid wraps a fixed reason with [ErrInvalidCredentials].
func invalid(reason error) error {
	return fmt.Errorf("%w: %w", ErrInvalidCredentials, reason)
}
