package authn_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/chartguard/chartguard/authn"
)

func ExampleWWWAuthenticate() {
	fmt.Println(authn.WWWAuthenticate(authn.ErrNoCredentials))
	fmt.Println(authn.WWWAuthenticate(fmt.Errorf("%w: token expired", authn.ErrInvalidCredentials)))
	// Output:
	// Bearer realm="chartguard"
	// Bearer realm="chartguard", error="invalid_token", error_description="The access token is invalid or expired"
}

// A handler maps the three outcomes to 401 and 503 and never shows the
// error text to the client.
func ExampleBearer_Authenticate() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	bearer, err := authn.NewBearer(authn.Config{
		Issuer:   "https://idp.example.org/realms/emr",
		Audience: "chartguard-api",
		RoleMap:  map[string]string{"emr-physicians": "physician"},
	}, logger, nil)
	if err != nil {
		logger.Error("bad oidc config", "error", err)
		return
	}
	var a authn.Authenticator = bearer
	_ = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.Authenticate(r.Context(), r)
		switch {
		case errors.Is(err, authn.ErrNoCredentials), errors.Is(err, authn.ErrInvalidCredentials):
			w.Header().Set("WWW-Authenticate", authn.WWWAuthenticate(err))
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		case err != nil:
			http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "roles:", p.Identity.Roles)
		}
	})
}
