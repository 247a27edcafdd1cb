package authn

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestConfigSetDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Config
		want Config
	}{
		{
			name: "empty fields get defaults; audience falls back to client_id",
			in:   Config{Issuer: "https://idp.example.org", ClientID: "chartguard"},
			want: Config{
				Issuer: "https://idp.example.org", ClientID: "chartguard", Audience: "chartguard",
				RolesClaim: "groups", FHIRUserClaim: "fhirUser",
				SigningAlgs: []string{"RS256", "ES256", "PS256"}, ClockSkew: 60 * time.Second,
			},
		},
		{
			name: "set fields are kept",
			in: Config{
				Issuer: "https://idp.example.org", ClientID: "chartguard", Audience: "api",
				RolesClaim: "roles", FHIRUserClaim: "fhir_user", SigningAlgs: []string{"ES384"},
				ClockSkew: 5 * time.Second,
			},
			want: Config{
				Issuer: "https://idp.example.org", ClientID: "chartguard", Audience: "api",
				RolesClaim: "roles", FHIRUserClaim: "fhir_user", SigningAlgs: []string{"ES384"},
				ClockSkew: 5 * time.Second,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in
			got.SetDefaults()
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func(edit func(*Config)) Config {
		c := Config{Issuer: "https://idp.example.org/realms/emr", ClientID: "chartguard"}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; nil = valid
	}{
		{name: "minimal", cfg: valid(nil)},
		{name: "after SetDefaults", cfg: func() Config { c := valid(nil); c.SetDefaults(); return c }()},
		{name: "http on loopback", cfg: valid(func(c *Config) { c.Issuer = "http://127.0.0.1:5556/dex" })},
		{name: "http on localhost", cfg: valid(func(c *Config) { c.JWKSURL = "http://localhost:5556/keys" })},
		{name: "audience without client_id", cfg: valid(func(c *Config) { c.ClientID = ""; c.Audience = "api" })},
		{name: "missing issuer", cfg: valid(func(c *Config) { c.Issuer = "" }), want: []string{"oidc.issuer: required"}},
		{
			name: "plain http issuer",
			cfg:  valid(func(c *Config) { c.Issuer = "http://idp.example.org" }),
			want: []string{"oidc.issuer: must be an absolute https URL"},
		},
		{
			name: "issuer with query",
			cfg:  valid(func(c *Config) { c.Issuer = "https://idp.example.org/?tenant=1" }),
			want: []string{"oidc.issuer:"},
		},
		{name: "relative issuer", cfg: valid(func(c *Config) { c.Issuer = "/idp" }), want: []string{"oidc.issuer:"}},
		{
			name: "no audience",
			cfg:  valid(func(c *Config) { c.ClientID = "" }),
			want: []string{"oidc.audience: required"},
		},
		{
			name: "HMAC and none refused",
			cfg:  valid(func(c *Config) { c.SigningAlgs = []string{"RS256", "HS256", "none"} }),
			want: []string{`oidc.signing_algs: "HS256" is not allowed`, `oidc.signing_algs: "none" is not allowed`},
		},
		{name: "negative skew", cfg: valid(func(c *Config) { c.ClockSkew = -time.Second }), want: []string{"oidc.clock_skew:"}},
		{name: "huge skew", cfg: valid(func(c *Config) { c.ClockSkew = time.Hour }), want: []string{"oidc.clock_skew:"}},
		{
			name: "plain http jwks_url",
			cfg:  valid(func(c *Config) { c.JWKSURL = "http://idp.example.org/keys" }),
			want: []string{"oidc.jwks_url:"},
		},
		{
			name: "empty role",
			cfg:  valid(func(c *Config) { c.RoleMap = map[string]string{"emr-physicians": ""} }),
			want: []string{"oidc.role_map:"},
		},
		{
			name: "every problem at once",
			cfg:  Config{ClockSkew: -1, SigningAlgs: []string{"HS512"}},
			want: []string{"oidc.issuer:", "oidc.audience:", "oidc.signing_algs:", "oidc.clock_skew:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Len(t, strings.Split(err.Error(), "\n"), len(tt.want), "Validate() = %v", err)
		})
	}
}

func TestConfigYAMLKeys(t *testing.T) {
	const doc = `
issuer: https://idp.example.org
client_id: chartguard
audience: chartguard-api
roles_claim: roles
role_map: {"emr-physicians": physician}
fhir_user_claim: fhir_user
signing_algs: [ES256]
clock_skew: 30s
jwks_url: https://idp.example.org/keys
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	var got Config
	require.NoError(t, dec.Decode(&got))
	assert.Equal(t, Config{
		Issuer:        "https://idp.example.org",
		ClientID:      "chartguard",
		Audience:      "chartguard-api",
		RolesClaim:    "roles",
		RoleMap:       map[string]string{"emr-physicians": "physician"},
		FHIRUserClaim: "fhir_user",
		SigningAlgs:   []string{"ES256"},
		ClockSkew:     30 * time.Second,
		JWKSURL:       "https://idp.example.org/keys",
	}, got)
	require.NoError(t, got.Validate())
}
