package policy

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/download"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/rest"
)

// Defaults of [BundleConfig].
const (
	DefaultBundlePollMin = 30 * time.Second
	DefaultBundlePollMax = 120 * time.Second
)

// BundleConfig is "policy.bundle": an OPA bundle server as the policy
// source. When URL is set the bundle replaces policy.dir: the directory
// is neither loaded nor watched.
type BundleConfig struct {
	// URL of the bundle (a .tar.gz), http or https.
	URL string `yaml:"url"`
	// Poll bounds the wait between two downloads; each wait is picked at
	// random between Min and Max (whole seconds, at least 1s). Defaults
	// 30s and 120s.
	Poll BundlePollConfig `yaml:"poll"`
	// VerificationKeyFile is a PEM public key (RSA, or ECDSA P-256/384/521)
	// the bundle's signature (.signatures.json, `opa build --signing-key`)
	// must verify with. When set, unsigned or badly signed bundles are
	// refused.
	//
	// Security: without it, whoever can answer at URL (or change the
	// bundle on the server) decides every request. Accepted only because
	// the URL is operator configuration; production should sign bundles.
	VerificationKeyFile string `yaml:"verification_key_file"`
}

// BundlePollConfig is "policy.bundle.poll".
type BundlePollConfig struct {
	Min time.Duration `yaml:"min"`
	Max time.Duration `yaml:"max"`
}

// SetDefaults fills zero poll bounds.
func (c *BundleConfig) SetDefaults() {
	if c.Poll.Min == 0 {
		c.Poll.Min = DefaultBundlePollMin
	}
	if c.Poll.Max == 0 {
		c.Poll.Max = max(DefaultBundlePollMax, c.Poll.Min)
	}
}

// Validate checks the bundle settings (nothing when URL is empty).
// Errors name the key and the fix.
func (c BundleConfig) Validate() error {
	if c.URL == "" {
		if c.VerificationKeyFile != "" {
			return errors.New("policy.bundle.verification_key_file: set without policy.bundle.url; set the url or remove the key file")
		}
		return nil
	}
	var errs []error
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		errs = append(errs, errors.New("policy.bundle.url: want an absolute http(s) URL without credentials, e.g. https://bundles.example.org/chartguard/bundle.tar.gz"))
	}
	// Security: a bundle is the access policy itself; one taken unsigned
	// from the network lets whoever controls that path or server grant
	// any access. So a key is required, never optional.
	if c.VerificationKeyFile == "" {
		errs = append(errs, errors.New("policy.bundle.verification_key_file: required with policy.bundle.url (bundles must be signed); set it to the PEM public key that signs your bundles (opa build --signing-key)"))
	}
	if c.Poll.Min < time.Second || c.Poll.Min%time.Second != 0 {
		errs = append(errs, fmt.Errorf("policy.bundle.poll.min: %s: want whole seconds, at least 1s", c.Poll.Min))
	}
	if c.Poll.Max < c.Poll.Min || c.Poll.Max%time.Second != 0 {
		errs = append(errs, fmt.Errorf("policy.bundle.poll.max: %s: want whole seconds, at least poll.min", c.Poll.Max))
	}
	return errors.Join(errs...)
}

// bundleKeyID names the one verification key. It overrides whatever key
// id a signature names, so only the configured key can verify.
const bundleKeyID = "chartguard"

// newDownloader builds the OPA downloader for cfg (validated). It runs in
// manual trigger mode: [Manager] polls and reloads on demand itself, so
// one download runs at a time.
func newDownloader(cfg BundleConfig) (*download.Downloader, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("policy.bundle.url: %w", err)
	}
	base := u.Scheme + "://" + u.Host
	path := strings.TrimPrefix(u.EscapedPath(), "/")
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	restCfg, err := json.Marshal(map[string]any{"url": base, "response_header_timeout_seconds": 30,
		"credentials": map[string]any{"plugin": limitsPluginName}})
	if err != nil {
		return nil, err
	}
	client, err := rest.New(restCfg, nil, rest.Logger(logging.NewNoOpLogger()),
		rest.AuthPluginLookup(func(name string) rest.HTTPAuthPlugin {
			if name == limitsPluginName {
				return limitsPlugin{}
			}
			return nil
		}))
	if err != nil {
		return nil, fmt.Errorf("policy.bundle.url: %w", err)
	}
	trigger := plugins.TriggerManual
	minS, maxS := int64(cfg.Poll.Min/time.Second), int64(cfg.Poll.Max/time.Second)
	dcfg := download.Config{Trigger: &trigger, Polling: download.PollingConfig{MinDelaySeconds: &minS, MaxDelaySeconds: &maxS}}
	if err := dcfg.ValidateAndInjectDefaults(); err != nil {
		return nil, fmt.Errorf("policy.bundle.poll: %w", err)
	}
	d := download.New(dcfg, client, path).
		WithSizeLimitBytes(maxFileBytes).
		WithBundleParserOpts(ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
	if cfg.VerificationKeyFile != "" {
		vc, err := verificationConfig(cfg.VerificationKeyFile)
		if err != nil {
			return nil, fmt.Errorf("policy.bundle.verification_key_file: %w", err)
		}
		d = d.WithBundleVerificationConfig(vc)
	}
	return d, nil
}

// verificationConfig reads a PEM public key and picks its JWS algorithm.
func verificationConfig(file string) (*bundle.VerificationConfig, error) {
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block; want a PEM public key")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("want a PEM (PKIX) public key: %w", err)
	}
	var alg string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		alg = "RS256"
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			alg = "ES256"
		case elliptic.P384():
			alg = "ES384"
		case elliptic.P521():
			alg = "ES512"
		}
	}
	if alg == "" {
		return nil, fmt.Errorf("key type %T not supported; want RSA or ECDSA P-256/384/521", pub)
	}
	kc, err := keys.NewKeyConfig(string(pemBytes), alg, "")
	if err != nil {
		return nil, err
	}
	return bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{bundleKeyID: kc}, bundleKeyID, "", nil), nil
}

// limitsPluginName names limitsPlugin in the REST client's configuration.
const limitsPluginName = "chartguard_bundle_limits"

// maxBundleBytes bounds a bundle download, compressed and uncompressed:
// the directory limit plus room for the tar headers.
const maxBundleBytes = maxTotalBytes + 16<<20

// limitsPlugin gives OPA's REST client an HTTP client whose responses are
// checked against maxBundleBytes before OPA reads them. (A REST "auth
// plugin" is where OPA lets a caller supply the client; it adds no
// credentials.)
//
// Security: OPA's downloader limits each file of a bundle, not their sum,
// and reads them all into memory before it checks the signature. So a
// small gzip of many large files (a "zip bomb") from whoever can answer
// at the URL would exhaust memory before it was found unsigned. Here the
// body is read whole (compressed, at most maxBundleBytes) and its size
// uncompressed counted, without keeping it, before OPA sees it.
type limitsPlugin struct{}

func (limitsPlugin) NewClient(c rest.Config) (*http.Client, error) {
	timeout := int64(30)
	if c.ResponseHeaderTimeoutSeconds != nil {
		timeout = *c.ResponseHeaderTimeoutSeconds
	}
	client := rest.DefaultRoundTripperClient(&tls.Config{MinVersion: tls.VersionTLS12}, timeout)
	client.Transport = limitTransport{next: client.Transport}
	return client, nil
}

func (limitsPlugin) Prepare(*http.Request) error { return nil }

type limitTransport struct{ next http.RoundTripper }

func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := readBundle(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return resp, nil
}

// readBundle reads a bundle download and fails if it, or the gzip stream
// it holds uncompressed, exceeds maxBundleBytes. A body that is not gzip
// is returned as read: OPA's loader reports it.
func readBundle(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxBundleBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxBundleBytes {
		return nil, fmt.Errorf("bundle: %w: over %d bytes", errTooLarge, maxBundleBytes)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return body, nil
	}
	if n, _ := io.Copy(io.Discard, io.LimitReader(zr, maxBundleBytes+1)); n > maxBundleBytes {
		return nil, fmt.Errorf("bundle: %w: over %d bytes uncompressed", errTooLarge, maxBundleBytes)
	}
	return body, nil
}

// bundleSource turns a downloaded bundle into a source: its modules
// re-parsed as Rego v1 (test modules kept, for the tests), its data.
// Limits as for a directory apply.
func bundleSource(b *bundle.Bundle) (*source, error) {
	src := &source{modules: map[string]*ast.Module{}, raw: map[string][]byte{}, data: b.Data}
	if src.data == nil {
		src.data = map[string]any{}
	}
	var total int
	for _, mf := range b.Modules {
		name := strings.TrimPrefix(mf.Path, "/")
		total += len(mf.Raw)
		if total > maxTotalBytes {
			return nil, fmt.Errorf("bundle: %w: modules exceed %d bytes", errTooLarge, maxTotalBytes)
		}
		m, err := ast.ParseModuleWithOpts(name, string(mf.Raw), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		src.modules[name], src.raw[name] = m, mf.Raw
	}
	return src, nil
}

// bundleFetcher downloads the bundle on demand. Callers serialise fetch
// (the [Manager]'s reload lock).
type bundleFetcher struct {
	d       *download.Downloader
	updates chan download.Update
}

func newBundleFetcher(cfg BundleConfig) (*bundleFetcher, error) {
	d, err := newDownloader(cfg)
	if err != nil {
		return nil, err
	}
	f := &bundleFetcher{updates: make(chan download.Update, 1)}
	// The downloader calls back exactly once per download, error or not.
	f.d = d.WithCallback(func(_ context.Context, u download.Update) error {
		f.updates <- u
		return nil
	})
	return f, nil
}

// fetch runs one download now and returns the update it produced (Bundle
// nil when the server answered 304 Not Modified, the ETag matching).
func (f *bundleFetcher) fetch(ctx context.Context) (download.Update, error) {
	_ = f.d.Trigger(ctx) // its error is also the update's
	// Wait for the download itself, even when ctx ended first (it ends
	// soon after, its request cancelled), so two never overlap.
	u := <-f.updates
	if u.Error == nil && ctx.Err() != nil {
		return u, ctx.Err()
	}
	return u, u.Error
}

// CheckBundle checks cfg as [NewManager] would before downloading: the
// settings, and that the verification key file holds a usable public key.
// It does no I/O to the bundle server (`chartguard config check`).
func CheckBundle(cfg BundleConfig) error {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil || cfg.URL == "" {
		return err
	}
	_, err := newDownloader(cfg)
	return err
}
