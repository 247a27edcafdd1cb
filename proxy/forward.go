package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// errAuditRefused makes ModifyResponse hand a response to the error handler
// when its audit event could not be made durable.
var errAuditRefused = errors.New("audit refused the response")

// newForwarder builds the reverse proxy. Rewrite runs after ReverseProxy has
// removed hop-by-hop and Forwarded/X-Forwarded-* headers, so what it sets
// survives; it never uses Director (golang/go#50580, #53002).
func (p *Proxy) newForwarder() (*httputil.ReverseProxy, error) {
	tr, err := upstreamTransport(p.cfg)
	if err != nil {
		return nil, err
	}
	var rt http.RoundTripper = tr
	if p.cfg.Upstream.Auth.Mode == "client_credentials" {
		rt = serviceIdentity(p.cfg, tr)
	}
	return &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      timedTransport{rt, p.metrics},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.upstreamError,
		BufferPool:     &bufferPool{},
		// Body-copy errors can name nothing sensitive, but keep them terse.
		ErrorLog: log.New(slogWriter{p.log, "reverse proxy copy error"}, "", 0),
	}, nil
}

// forward sends the request upstream. The audit event is committed in
// modifyResponse (or upstreamError), before the first body byte.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, x *exchange) {
	if p.asserter != nil && x.principal != nil {
		tok, err := p.asserter.Assert(x.principal.Identity, x.principal.TokenHash, p.cfg.upstreamURL.String())
		if err != nil {
			p.log.Error("identity assertion could not be signed", "request_id", x.requestID, "error", err)
			p.respond(w, x, apiProblem{status: http.StatusServiceUnavailable, code: "transient",
				message: "the request cannot be vouched for right now"})
			return
		}
		x.assertion = tok
	}
	r.Body = http.MaxBytesReader(w, r.Body, p.cfg.Limits.MaxBody)
	ctx := context.WithValue(r.Context(), exchangeKey{}, x)
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

// rewrite builds the outbound request from the canonical target only.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	x := exchangeFrom(pr.In.Context())
	up, out := p.cfg.upstreamURL, pr.Out
	out.URL.Scheme, out.URL.Host, out.Host = up.Scheme, up.Host, up.Host
	out.URL.Path = up.Path + x.target.Path
	out.URL.RawPath = up.EscapedPath() + x.target.EscapedPath
	out.URL.RawQuery = x.target.RawQuery
	out.URL.ForceQuery = false
	if x.target.Form != nil {
		out.Body = io.NopCloser(bytes.NewReader(x.target.Form))
		out.ContentLength = int64(len(x.target.Form))
		out.Header.Set("Content-Length", strconv.Itoa(len(x.target.Form)))
		out.Header.Del("Transfer-Encoding")
		out.TransferEncoding = nil
	}
	if checksResponse(x.resource) {
		prepareChecked(out, &x.target)
	}
	if x.proofs != nil && x.proofs.ifMatch != "" {
		out.Header.Set("If-Match", x.proofs.ifMatch) // the version the policy decided on
	}
	scrubHeaders(out.Header, p.cfg.Upstream.PassAuthorization)
	scrubCookies(out.Header)
	if x.assertion != "" {
		// After scrubHeaders: a client-sent header of this name is gone.
		out.Header.Set(p.asserter.Header(), x.assertion)
	}
	out.Header.Set("X-Request-Id", x.requestID)
	out.Header.Set("X-Forwarded-For", x.ip)
	out.Header.Set("X-Forwarded-Proto", p.cfg.publicURL.Scheme)
	out.Header.Set("X-Forwarded-Host", p.cfg.publicURL.Host)
}

// modifyResponse is the commit point for forwarded requests: status and
// headers are final and no body byte has been sent.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	x := exchangeFrom(resp.Request.Context())
	dropOwnSetCookies(resp.Header)
	for k := range resp.Header {
		if strings.HasPrefix(k, "Access-Control-") {
			delete(resp.Header, k) // CORS is answered by the proxy alone
		}
	}
	p.rewriteLocations(resp.Header)
	ctx := resp.Request.Context()
	if x.proofs != nil && x.proofs.ifMatch != "" && resp.StatusCode == http.StatusPreconditionFailed {
		replaceResponse(resp, apiProblem{status: http.StatusConflict, code: "conflict",
			message: "the resource changed while ChartGuard checked this write; read it again and retry"}, x.requestID)
	} else if checksResponse(x.resource) {
		if pr := p.checkResponse(ctx, resp, x); pr != nil {
			replaceResponse(resp, *pr, x.requestID)
		}
	}
	resp.Header.Set("X-Request-Id", x.requestID)
	if p.commit(context.WithoutCancel(ctx), x, resp.StatusCode, resp.ContentLength, false) != resp.StatusCode {
		return errAuditRefused
	}
	return nil
}

// upstreamError maps transport failures to 502/504 (audited as error), and
// answers 503 for a response the audit log refused.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	x := exchangeFrom(r.Context())
	if errors.Is(err, errAuditRefused) {
		writeOutcome(w, auditUnavailable(), x.requestID)
		return
	}
	var maxErr *http.MaxBytesError
	var ne net.Error
	pr := apiProblem{status: http.StatusBadGateway, code: "transient", message: "the EMR could not be reached"}
	switch {
	case errors.As(err, &maxErr):
		pr = apiProblem{status: http.StatusRequestEntityTooLarge, code: "too-costly",
			message: fmt.Sprintf("request body larger than %d bytes", p.cfg.Limits.MaxBody)}
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		pr = apiProblem{status: http.StatusGatewayTimeout, code: "timeout", message: "the EMR did not answer in time"}
	case errors.Is(err, context.Canceled):
		p.log.Info("client went away before the EMR answered", "request_id", x.requestID)
	}
	if pr.status != http.StatusRequestEntityTooLarge {
		p.metrics.upstreamErrors.Inc()
		p.log.Warn("upstream request failed", "request_id", x.requestID, "status", pr.status, "error_class", errorClass(err))
	}
	p.respond(w, x, pr)
}

// errorClass names a transport error without its text (which holds the URL).
func errorClass(err error) string {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &oe):
		return oe.Op
	}
	return "other"
}

// spoofable reports whether a client-sent header could make the upstream
// believe something about identity, address or method that ChartGuard did
// not establish. Names are compared case-insensitively with '_' read as '-'
// because some servers (CGI, nginx with underscores_in_headers) do the same.
func spoofable(name string) bool {
	n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	switch n {
	case "forwarded", "x-forwarded-user", "x-forwarded-email", "x-forwarded-groups",
		"x-forwarded-preferred-username", "x-forwarded-access-token", "x-remote-user",
		"x-remote-group", "remote-user", "x-real-ip", "x-client-ip", "true-client-ip",
		"x-http-method-override", "x-http-method", "x-method-override", "x-request-id":
		return true
	}
	return strings.HasPrefix(n, "x-chartguard-") || strings.HasPrefix(n, "x-forwarded-") ||
		strings.HasPrefix(n, "x-auth-request-")
}

func scrubHeaders(h http.Header, passAuthorization bool) {
	for name := range h {
		if spoofable(name) {
			delete(h, name)
		}
	}
	if !passAuthorization {
		h.Del("Authorization")
	}
}

// ownCookie reports whether a cookie name is ChartGuard's. They never reach
// the upstream, and the upstream cannot set them.
func ownCookie(name string) bool {
	n := strings.ToLower(strings.TrimSpace(name))
	return strings.HasPrefix(n, "__host-chartguard") || strings.HasPrefix(n, "__secure-chartguard") ||
		strings.HasPrefix(n, "chartguard")
}

// scrubCookies removes ChartGuard's cookies from the Cookie header(s),
// leaving the others byte for byte.
func scrubCookies(h http.Header) {
	lines := h.Values("Cookie")
	if len(lines) == 0 {
		return
	}
	var keep []string
	for _, line := range lines {
		for pair := range strings.SplitSeq(line, ";") {
			name, _, _ := strings.Cut(pair, "=")
			if strings.TrimSpace(pair) != "" && !ownCookie(name) {
				keep = append(keep, strings.TrimSpace(pair))
			}
		}
	}
	h.Del("Cookie")
	if len(keep) > 0 {
		h.Set("Cookie", strings.Join(keep, "; "))
	}
}

func dropOwnSetCookies(h http.Header) {
	vals := h.Values("Set-Cookie")
	if len(vals) == 0 {
		return
	}
	h.Del("Set-Cookie")
	for _, v := range vals {
		name, _, _ := strings.Cut(v, "=")
		if !ownCookie(name) {
			h.Add("Set-Cookie", v)
		}
	}
}

// upstreamTransport dials the EMR: no environment proxy, bounded dial and
// header waits, TLS ≥ 1.2 with an optional CA and (mtls) client certificate.
func upstreamTransport(cfg *Config) (*http.Transport, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	u := cfg.Upstream
	if u.TLS.CAFile != "" {
		pem, err := os.ReadFile(u.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream.tls.ca_file: no PEM certificates in %q", u.TLS.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	if u.Auth.Mode == "mtls" {
		cert, err := tls.LoadX509KeyPair(u.TLS.CertFile, u.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("upstream.tls.cert_file/key_file: %w", err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: u.Timeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
	}, nil
}

// serviceIdentity sends ChartGuard's own OAuth 2.0 client-credentials token
// on every upstream request; the token is cached until it expires. The
// client's Authorization never reaches the EMR (scrubHeaders), so the EMR
// sees one identity: ChartGuard's.
func serviceIdentity(cfg *Config, base http.RoundTripper) http.RoundTripper {
	a := cfg.Upstream.Auth
	cc := &clientcredentials.Config{ClientID: a.ClientID, ClientSecret: cfg.upstreamSecret,
		TokenURL: a.TokenURL, Scopes: a.Scopes, AuthStyle: oauth2.AuthStyleInHeader}
	tokenClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy: nil, TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12},
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, TLSHandshakeTimeout: 5 * time.Second}}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, tokenClient)
	return &oauth2.Transport{Source: oauth2.ReuseTokenSource(nil, cc.TokenSource(ctx)), Base: base}
}

// timedTransport records how long the upstream takes to answer headers.
type timedTransport struct {
	rt http.RoundTripper
	m  *metrics
}

func (t timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.rt.RoundTrip(r)
	t.m.upstreamDuration.Observe(time.Since(start).Seconds())
	return resp, err
}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// slogWriter adapts net/http's log.Logger to slog with a fixed message: the
// library's text can carry addresses and URLs.
type slogWriter struct {
	l   interface{ Warn(string, ...any) }
	msg string
}

func (s slogWriter) Write(b []byte) (int, error) {
	s.l.Warn(s.msg)
	return len(b), nil
}
