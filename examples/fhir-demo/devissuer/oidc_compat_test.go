package devissuer

import (
	"context"
	"net/http"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGoOIDCVerifies checks the issuer against go-oidc, the library
// ChartGuard's authn uses: discovery, remote JWKS and signature checks.
func TestGoOIDCVerifies(t *testing.T) {
	t.Parallel()
	_, base := newServer(t)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, base)
	require.NoError(t, err)
	verifier := provider.Verifier(&oidc.Config{ClientID: "chartguard", Now: testNow,
		SupportedSigningAlgs: []string{oidc.RS256}})

	tests := []struct {
		name, query string
		wantErr     bool
	}{
		{"valid", "role=physician&fhir_user=Practitioner/pr1", false},
		{"expired", "role=physician&exp_offset=-10m", true},
		{"other audience", "role=physician&aud=someone-else", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := mintHTTP(t, base, tc.query)
			require.Equal(t, http.StatusOK, status)
			tok, err := verifier.Verify(ctx, body["access_token"].(string))
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "dev-physician", tok.Subject)
			var claims struct {
				Groups   []string `json:"groups"`
				FHIRUser string   `json:"fhirUser"`
			}
			require.NoError(t, tok.Claims(&claims))
			assert.Equal(t, []string{"chartguard-physician"}, claims.Groups)
			assert.Equal(t, "Practitioner/pr1", claims.FHIRUser)
		})
	}
}
