package dex

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	gosundheit "github.com/AppsFlyer/go-sundheit"
	"github.com/dexidp/dex/server"
	"github.com/dexidp/dex/server/authflow"
	"github.com/dexidp/dex/server/signer"
	"github.com/dexidp/dex/server/tokens"
	"github.com/dexidp/dex/storage"
	"github.com/dexidp/dex/storage/memory"
)

// Fixed names of the demo identity provider.
const (
	// ClientID is the client_id of the one registered client.
	ClientID = "chartguard"
	// IssuerPath is the path of the issuer URL under the listener.
	IssuerPath = "/dex"
	// EmailDomain is the domain of every demo user's email.
	EmailDomain = "demo.chartguard.example"
	// GroupPrefix prefixes a role to form the user's Dex group.
	GroupPrefix = "chartguard-"

	connectorID = "local"
	// Lifetimes. Security: short ID tokens and bounded refresh tokens keep a
	// leaked demo token useful for minutes, not the 24 h Dex defaults to.
	idTokenTTL      = 15 * time.Minute
	authRequestTTL  = 10 * time.Minute
	refreshLifetime = 12 * time.Hour
	refreshIdle     = time.Hour
	refreshReuse    = 3 * time.Second
	// Server timeouts. Security: slow clients cannot pin connections for
	// long; the listener is loopback only, so generous values are fine.
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
	shutdownTimeout   = 5 * time.Second
)

// ErrOptions is wrapped by [Start] for invalid [Options].
var ErrOptions = errors.New("dex: invalid options")

// Roles returns the default ChartGuard roles, one demo user each, in the
// order of [IdP.Users].
func Roles() []string {
	return []string{"physician", "nurse", "registration", "billing", "lab",
		"pharmacist", "privacy-officer", "it-admin", "him"}
}

// fhirUsers records the FHIR identity of the clinical demo users. Dex cannot
// emit it as a claim; the proxy maps it (see [User.FHIRUser]).
func fhirUsers() map[string]string {
	return map[string]string{"physician": "Practitioner/pr1", "nurse": "Practitioner/pr9"}
}

// Options configures [Start].
type Options struct {
	// RedirectURL is the one redirect URI registered for the chartguard
	// client (ChartGuard's OIDC callback). Required: an absolute http or
	// https URL without a fragment.
	RedirectURL string
	// Addr is the listen address; it must be loopback (see
	// [ListenLoopback]). If empty, "127.0.0.1:0" (an ephemeral port).
	Addr string
	// Logger receives Dex's logs. If nil, they are discarded.
	Logger *slog.Logger
	// Now is Dex's clock. If nil, time.Now.
	Now func() time.Time
	// Rand is the source of the client secret and the passwords. If nil,
	// crypto/rand.Reader. The RSA signing key always comes from crypto/rand.
	Rand io.Reader
}

// User is one static demo user.
type User struct {
	// Role is the ChartGuard role the user stands for ("physician").
	Role string
	// Email is the login name and the email claim.
	Email string
	// Password is random, made at start.
	Password string
	// Groups are the Dex groups, sent in the "groups" claim.
	Groups []string
	// FHIRUser is the user's FHIR identity ("Practitioner/pr1"), empty when
	// the role has none. Dex does not emit it; it is recorded here for the
	// proxy's mapping.
	FHIRUser string
}

// LogValue implements [slog.LogValuer]: the password never reaches a log.
func (u User) LogValue() slog.Value {
	return slog.GroupValue(slog.String("role", u.Role), slog.String("email", u.Email))
}

// IdP is a running Dex. Its fields are read-only.
type IdP struct {
	// Issuer is the issuer URL, "http://<addr>/dex".
	Issuer string
	// ClientID and ClientSecret authenticate the chartguard client.
	ClientID, ClientSecret string
	// RedirectURL is the registered redirect URI.
	RedirectURL string
	// Users are the demo users, in the order of [Roles].
	Users []User

	srv       *http.Server
	health    gosundheit.Health
	cancel    context.CancelFunc
	served    chan error
	closeOnce sync.Once
	closeErr  error
}

// User returns the demo user for role.
func (p *IdP) User(role string) (User, bool) {
	for _, u := range p.Users {
		if u.Role == role {
			return u, true
		}
	}
	return User{}, false
}

// Start runs Dex on a loopback listener until [IdP.Close]. ctx bounds the
// start only; cancelling it later does not stop Dex.
func Start(ctx context.Context, opts Options) (*IdP, error) {
	if err := checkRedirect(opts.RedirectURL); err != nil {
		return nil, err
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	ln, err := ListenLoopback(opts.Addr)
	if err != nil {
		return nil, err
	}
	p, handler, err := build(ctx, opts, "http://"+ln.Addr().String()+IssuerPath)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	p.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	go func() { p.served <- p.srv.Serve(ln) }()
	return p, nil
}

// build makes the secrets and the Dex server for issuer.
func build(ctx context.Context, opts Options, issuer string) (*IdP, http.Handler, error) {
	secret, err := randomString(opts.Rand, 32)
	if err != nil {
		return nil, nil, err
	}
	users, err := newUsers(opts.Rand)
	if err != nil {
		return nil, nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("dex: signing key: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	p := &IdP{
		Issuer:       issuer,
		ClientID:     ClientID,
		ClientSecret: secret,
		RedirectURL:  opts.RedirectURL,
		Users:        users,
		health:       gosundheit.New(),
		served:       make(chan error, 1),
	}
	handler, err := p.newServer(ctx, opts, key)
	if err != nil {
		return nil, nil, err
	}
	return p, handler, nil
}

// newServer builds the Dex server over in-memory storage holding the
// client, the users and the local password connector.
func (p *IdP) newServer(ctx context.Context, opts Options, key *rsa.PrivateKey) (http.Handler, error) {
	sig, err := signer.NewMockSigner(key)
	if err != nil {
		return nil, fmt.Errorf("dex: signer: %w", err)
	}
	store := memory.New(opts.Logger)
	store = storage.WithStaticClients(store, []storage.Client{{
		ID:                p.ClientID,
		Secret:            p.ClientSecret,
		RedirectURIs:      []string{p.RedirectURL},
		Name:              "ChartGuard",
		AllowedConnectors: []string{connectorID},
	}})
	store = withPasswords(store, p.Users)
	store = storage.WithStaticConnectors(store, []storage.Connector{{
		ID: connectorID, Type: connectorID, Name: "Email",
	}})

	// Dex runs until Close, not until the caller's ctx ends: its garbage
	// collector and signer live on runCtx.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	srv, err := server.NewServer(runCtx, server.Config{
		Issuer:  p.Issuer,
		Storage: store,
		Logger:  opts.Logger,
		Signer:  sig,
		Now:     opts.Now,
		// Security: only the browser flow ChartGuard uses (and its
		// refresh); no device, token exchange, client credentials or
		// password grants, and PKCE S256 on every code (RFC 9700 §2.1.1).
		AllowedGrantTypes:    []string{"authorization_code", "refresh_token"},
		PKCE:                 authflow.PKCEConfig{Enforce: true, CodeChallengeMethodsSupported: []string{"S256"}},
		SkipApprovalScreen:   true,
		IDTokensValidFor:     idTokenTTL,
		AuthRequestsValidFor: authRequestTTL,
		RefreshTokenPolicy:   tokens.NewRefreshStrategy(true, refreshLifetime, refreshIdle, refreshReuse, opts.Now),
		HealthChecker:        p.health,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("dex: server: %w", err)
	}
	p.cancel = cancel
	return srv, nil
}

// Close stops Dex: it shuts the listener down (waiting up to 5 s for
// requests in flight) and ends Dex's background work. It is safe to call
// more than once.
func (p *IdP) Close() error {
	p.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		err := p.srv.Shutdown(ctx)
		if serr := <-p.served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		p.cancel()
		p.health.DeregisterAll()
		if err != nil {
			p.closeErr = fmt.Errorf("dex: close: %w", err)
		}
	})
	return p.closeErr
}

// newUsers makes one user per role with a random password.
func newUsers(r io.Reader) ([]User, error) {
	roles := Roles()
	fhir := fhirUsers()
	users := make([]User, 0, len(roles))
	for _, role := range roles {
		pw, err := randomString(r, 16)
		if err != nil {
			return nil, err
		}
		users = append(users, User{
			Role:     role,
			Email:    role + "@" + EmailDomain,
			Password: pw,
			Groups:   []string{GroupPrefix + role},
			FHIRUser: fhir[role],
		})
	}
	return users, nil
}

// randomString returns n random bytes from r, base64url-encoded.
func randomString(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("dex: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// checkRedirect accepts an absolute http(s) URL with a host and no
// fragment (RFC 6749 §3.1.2).
func checkRedirect(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Fragment != "" || strings.Contains(raw, "#") || u.User != nil {
		return fmt.Errorf("%w: RedirectURL must be an absolute http(s) URL without a fragment", ErrOptions)
	}
	return nil
}
