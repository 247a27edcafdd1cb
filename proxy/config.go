package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/chartguard/chartguard/audit"
	"github.com/chartguard/chartguard/authn"
	"github.com/chartguard/chartguard/internal/heapfloor"
	"github.com/chartguard/chartguard/policy"
	"github.com/chartguard/chartguard/session"
)

// Config is the whole ChartGuard configuration: one YAML file made of each
// package's own Config. Key names are a contract (DESIGN.md).
type Config struct {
	NodeID         string                `yaml:"node_id"`
	Listen         string                `yaml:"listen"`
	TLS            TLSConfig             `yaml:"tls"`
	PublicURL      string                `yaml:"public_url"`
	TrustedProxies []string              `yaml:"trusted_proxies"`
	Limits         Limits                `yaml:"limits"`
	Admin          AdminConfig           `yaml:"admin"`
	Upstream       UpstreamConfig        `yaml:"upstream"`
	Routes         []RouteConfig         `yaml:"routes"`
	CORS           CORSConfig            `yaml:"cors"`
	OIDC           authn.Config          `yaml:"oidc"`
	Policy         policy.Config         `yaml:"policy"`
	Audit          AuditConfig           `yaml:"audit"`
	Session        SessionConfig         `yaml:"session"`
	Assertion      authn.AssertionConfig `yaml:"assertion"`
	Runtime        RuntimeConfig         `yaml:"runtime"`

	// Derived by LoadConfig; never read from YAML.
	adminToken     string
	upstreamSecret string // upstream.auth.client_secret_file's content
	trustedProxies []netip.Prefix
	publicURL      *url.URL
	upstreamURL    *url.URL
}

// TLSConfig turns on TLS for the proxy listener.
type TLSConfig struct {
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	MinVersion string `yaml:"min_version"` // "1.2" (default) or "1.3"
}

// Limits bound what one client can make the proxy do.
type Limits struct {
	ReadHeaderTimeout  time.Duration `yaml:"read_header_timeout"`
	ReadTimeout        time.Duration `yaml:"read_timeout"`
	IdleTimeout        time.Duration `yaml:"idle_timeout"`
	MaxHeaderBytes     int64         `yaml:"max_header_bytes"`
	MaxTargetLength    int           `yaml:"max_target_length"`
	MaxQueryParams     int           `yaml:"max_query_params"`
	MaxBody            int64         `yaml:"max_body"`
	MaxBatchBody       int64         `yaml:"max_batch_body"`
	MaxFilterBody      int64         `yaml:"max_filter_body"`
	UnauthenticatedRPS float64       `yaml:"unauthenticated_rps"`
}

// AdminConfig is the admin listener (health, readiness, metrics).
type AdminConfig struct {
	Listen      string `yaml:"listen"`
	TokenFile   string `yaml:"token_file"`
	MetricsAuth string `yaml:"metrics_auth"` // token (default) or none
}

// UpstreamConfig is the EMR ChartGuard fronts.
type UpstreamConfig struct {
	URL               string             `yaml:"url"`
	FHIRBase          string             `yaml:"fhir_base"`
	Timeout           time.Duration      `yaml:"timeout"`
	TLS               UpstreamTLS        `yaml:"tls"`
	PassAuthorization bool               `yaml:"pass_authorization"`
	Auth              UpstreamAuthConfig `yaml:"auth"`
}

// UpstreamTLS configures TLS to the upstream (CA, and a client certificate
// for mtls).
type UpstreamTLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// UpstreamAuthConfig is how ChartGuard authenticates itself to the upstream
// (its service identity): none, mtls (upstream.tls client certificate) or
// client_credentials (an OAuth 2.0 token from token_url, cached until it
// expires, sent on every upstream request).
type UpstreamAuthConfig struct {
	Mode             string   `yaml:"mode"` // none (default), mtls or client_credentials
	TokenURL         string   `yaml:"token_url"`
	ClientID         string   `yaml:"client_id"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	Scopes           []string `yaml:"scopes"`
}

// RuntimeConfig is the process's own setting of Go's runtime, which serve
// applies (package heapfloor).
type RuntimeConfig struct {
	// MinHeap is a floor under the garbage collector's heap goal: the heap
	// may grow to it before a collection while little is live. 0 leaves
	// the collector to Go's defaults; GOGC in the environment overrides it.
	MinHeap int64 `yaml:"min_heap"`
}

// CORSConfig lists browser origins allowed to call the API.
type CORSConfig struct {
	AllowedOrigins []string `yaml:"allowed_origins"`
	AllowedHeaders []string `yaml:"allowed_headers"`
}

// AuditConfig is the audit package's config plus the proxy's aggregation of
// unauthenticated rejections.
type AuditConfig struct {
	audit.Config      `yaml:",inline"`
	AggregateInterval time.Duration `yaml:"aggregate_interval"`
}

// SessionConfig is browser sessions: the session package's own Config and
// the cookie settings the proxy owns.
type SessionConfig struct {
	session.Config `yaml:",inline"`
	// InsecureDev drops the __Host- prefix and Secure from the session
	// cookie so a browser keeps it over plain http. Refused unless listen
	// is a loopback address.
	InsecureDev bool `yaml:"insecure_dev"`
}

// ssoEnabled: browser sign-in is on when ChartGuard has a client secret
// for the IdP (oidc.client_secret_file).
func (c *Config) ssoEnabled() bool { return c.OIDC.ClientSecretFile != "" }

// notYet lists contract keys whose features are not built yet: they fail
// loudly instead of being silently ignored.
var notYet = map[string]string{
	"session.file": "the file session store", "session.redis": "the redis session store",
	"session.key_file": "session encryption", "session.max_sessions": "concurrent-session limits",
	"session.on_limit": "concurrent-session limits",
	"mfa":              "TOTP MFA", "break_glass": "break-the-glass",
	"export": "export controls", "security_headers": "browser pages", "cache": "static caching",
	"alerts": "alerting", "compliance": "compliance reports",
	"oidc.trust_idp_mfa":    "TOTP MFA",
	"oidc.refresh_interval": "session refresh", "oidc.refresh_grace": "session refresh",
}

// defaults returns a Config holding every default, before the file is read.
func defaults() Config {
	c := Config{
		Listen: ":8443",
		TLS:    TLSConfig{MinVersion: "1.2"},
		Limits: Limits{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
			IdleTimeout: 120 * time.Second, MaxHeaderBytes: 32 << 10, MaxTargetLength: 8192,
			MaxQueryParams: 100, MaxBody: 10 << 20, MaxBatchBody: 5 << 20, MaxFilterBody: 8 << 20, UnauthenticatedRPS: 50},
		Admin:    AdminConfig{Listen: "127.0.0.1:9090", MetricsAuth: "token"},
		Upstream: UpstreamConfig{FHIRBase: "/fhir", Timeout: 30 * time.Second, Auth: UpstreamAuthConfig{Mode: "none"}},
		CORS:     CORSConfig{AllowedHeaders: []string{"Authorization", "Content-Type"}},
		Audit:    AuditConfig{AggregateInterval: 10 * time.Second},
		Runtime:  RuntimeConfig{MinHeap: heapfloor.Default},
	}
	c.Audit.Durable, c.Audit.FailClosed = true, true
	c.OIDC.SetDefaults()
	c.Session.SetDefaults()
	c.Assertion.SetDefaults()
	c.Policy.SetDefaults()
	c.Audit.Config.SetDefaults()
	return c
}

// LoadConfig reads, decodes and validates the YAML file at path. Every
// problem is reported at once; each names its key and the fix.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseConfig(raw, os.LookupEnv)
}

// ParseConfig is LoadConfig on bytes, with an injectable environment.
func ParseConfig(raw []byte, getenv func(string) (string, bool)) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("config: not valid YAML: %w", err)
	}
	cfg := defaults()
	if len(root.Content) == 1 {
		d := decoder{notYet: notYet, getenv: getenv}
		d.decode(root.Content[0], reflect.ValueOf(&cfg).Elem(), "")
		if len(d.errs) > 0 {
			return nil, errors.Join(d.errs...)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// validate checks values and derives runtime state.
func (c *Config) validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if c.NodeID == "" {
		h, _ := os.Hostname()
		c.NodeID = h
	}
	var err error
	if c.publicURL, err = parseAbsURL("public_url", c.PublicURL, true); err != nil {
		add(err)
	}
	if c.upstreamURL, err = parseAbsURL("upstream.url", c.Upstream.URL, true); err != nil {
		add(err)
	}
	if c.Upstream.FHIRBase != "" && (!strings.HasPrefix(c.Upstream.FHIRBase, "/") || strings.HasSuffix(c.Upstream.FHIRBase, "/")) {
		add(errors.New(`upstream.fhir_base: must start with "/" and not end with one (e.g. /fhir)`))
	}
	switch c.Upstream.Auth.Mode {
	case "none":
	case "mtls":
		if c.Upstream.TLS.CertFile == "" || c.Upstream.TLS.KeyFile == "" {
			add(errors.New("upstream.tls.cert_file and key_file: required when upstream.auth.mode is mtls"))
		}
	case "client_credentials":
		add(c.validateClientCredentials())
	default:
		add(fmt.Errorf("upstream.auth.mode: %q is not one of none, mtls, client_credentials", c.Upstream.Auth.Mode))
	}
	add(c.validateListeners())
	for i, p := range c.TrustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			if a, aerr := netip.ParseAddr(p); aerr == nil {
				pfx, err = a.Prefix(a.BitLen())
			}
		}
		if err != nil {
			add(fmt.Errorf("trusted_proxies[%d]: %q is not a CIDR such as 10.0.0.0/8", i, p))
			continue
		}
		c.trustedProxies = append(c.trustedProxies, pfx.Masked())
	}
	for i, r := range c.Routes {
		_, err := compileRoute(i, r)
		add(err)
	}
	if c.Limits.MaxBatchBody <= 0 {
		add(errors.New("limits.max_batch_body: must be positive, e.g. 5MiB"))
	}
	if c.Limits.MaxFilterBody <= 0 {
		add(errors.New("limits.max_filter_body: must be positive, e.g. 8MiB (responses above it are refused, never passed unchecked)"))
	}
	if c.Runtime.MinHeap < 0 || c.Runtime.MinHeap > heapfloor.Max {
		add(errors.New("runtime.min_heap: must be a size up to 64GiB such as 64MiB, or 0 to leave the collector to Go's defaults"))
	}
	if c.Audit.AggregateInterval <= 0 {
		add(errors.New("audit.aggregate_interval: must be positive, e.g. 10s"))
	}
	add(c.OIDC.Validate())
	// Checkpoints name the log "<public_url host>/audit/<node>". A loopback
	// demo (insecure_dev) may run without a signing key: the audit package
	// then signs with a throwaway key and says so loudly.
	if c.publicURL != nil {
		c.Audit.Origin = c.publicURL.Host + "/audit/" + c.NodeID
	}
	c.Audit.EphemeralKey = c.Session.InsecureDev
	add(c.Audit.Config.Validate())
	if c.Policy.Dir == "" {
		add(errors.New("policy.dir: required (e.g. configs/policy)"))
	}
	add(c.Policy.Relationships.Validate())
	add(c.Policy.Bundle.Validate())
	add(c.validateSSO())
	return errors.Join(errs...)
}

func (c *Config) validateListeners() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %q is not host:port (e.g. :8443)", c.Listen))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls.cert_file and tls.key_file: set both or neither"))
	}
	if c.TLS.MinVersion != "1.2" && c.TLS.MinVersion != "1.3" {
		errs = append(errs, fmt.Errorf(`tls.min_version: %q is not allowed; use "1.2" or "1.3"`, c.TLS.MinVersion))
	}
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			errs = append(errs, fmt.Errorf("admin.listen: %q is not host:port (e.g. 127.0.0.1:9090)", c.Admin.Listen))
		}
		if c.Admin.TokenFile == "" {
			errs = append(errs, errors.New("admin.token_file: required; write a long random token into a file readable only by chartguard"))
		} else if tok, err := ReadSecretFile("admin.token_file", c.Admin.TokenFile); err != nil {
			errs = append(errs, err)
		} else if len(tok) < 16 {
			errs = append(errs, errors.New("admin.token_file: token shorter than 16 characters; use a long random token"))
		} else {
			c.adminToken = tok
		}
	}
	if c.Admin.MetricsAuth != "token" && c.Admin.MetricsAuth != "none" {
		errs = append(errs, fmt.Errorf("admin.metrics_auth: %q is not token or none", c.Admin.MetricsAuth))
	}
	return errors.Join(errs...)
}

func parseAbsURL(key, s string, required bool) (*url.URL, error) {
	if s == "" {
		if required {
			return nil, fmt.Errorf("%s: required (e.g. https://emr.example.org)", key)
		}
		return nil, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%s: %q is not an absolute http(s) URL without query", key, s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// validateClientCredentials checks upstream.auth for client_credentials and
// reads the client secret.
func (c *Config) validateClientCredentials() error {
	a := c.Upstream.Auth
	var errs []error
	if u, err := parseAbsURL("upstream.auth.token_url", a.TokenURL, true); err != nil {
		errs = append(errs, err)
	} else if u.Scheme != "https" && !isLoopbackHost(u.Hostname()) {
		errs = append(errs, errors.New("upstream.auth.token_url: must be https (plain http only on loopback)"))
	}
	if a.ClientID == "" {
		errs = append(errs, errors.New("upstream.auth.client_id: required when upstream.auth.mode is client_credentials"))
	}
	if a.ClientSecretFile == "" {
		errs = append(errs, errors.New("upstream.auth.client_secret_file: required when upstream.auth.mode is client_credentials"))
	} else if sec, err := ReadSecretFile("upstream.auth.client_secret_file", a.ClientSecretFile); err != nil {
		errs = append(errs, err)
	} else {
		c.upstreamSecret = sec
	}
	if c.Upstream.PassAuthorization {
		errs = append(errs, errors.New("upstream.pass_authorization: cannot be true with upstream.auth.mode client_credentials (the EMR would see two identities)"))
	}
	return errors.Join(errs...)
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// validateSSO checks browser sign-in, sessions and the identity assertion,
// and reads their secrets.
func (c *Config) validateSSO() error {
	errs := []error{c.Session.Config.Validate()}
	if c.ssoEnabled() {
		sec, err := ReadSecretFile("oidc.client_secret_file", c.OIDC.ClientSecretFile)
		errs = append(errs, err)
		c.OIDC.ClientSecret = sec
		if c.publicURL != nil && c.publicURL.Scheme != "https" && !c.Session.InsecureDev {
			errs = append(errs, errors.New("public_url: must be https for browser sign-in (session cookies are Secure); for a loopback demo set session.insecure_dev: true"))
		}
	}
	if c.Session.InsecureDev {
		host, _, err := net.SplitHostPort(c.Listen)
		if err != nil || !isLoopbackHost(host) {
			errs = append(errs, errors.New("session.insecure_dev: only allowed when listen is a loopback address such as 127.0.0.1:8443"))
		}
	}
	if c.Assertion.SigningKeyFile != "" {
		errs = append(errs, c.Assertion.Validate())
	}
	return errors.Join(errs...)
}
