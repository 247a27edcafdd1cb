package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/chartguard/chartguard/chartguard"
)

// errClassify marks a request shape ChartGuard refuses to guess about; its
// message is safe to show.
var errClassify = errors.New("request not understood")

var (
	errTooLarge    = errors.New("request body too large")
	errUnsupported = errors.New("unsupported media type")
)

func classifyProblem(err error) apiProblem {
	switch {
	case errors.Is(err, errTooLarge):
		return apiProblem{status: http.StatusRequestEntityTooLarge, code: "too-costly", message: err.Error()}
	case errors.Is(err, errUnsupported):
		return apiProblem{status: http.StatusUnsupportedMediaType, code: "not-supported", message: err.Error()}
	}
	return problem(http.StatusBadRequest, "invalid", err)
}

// classify decides what the request touches. For a FHIR POST _search it
// reads the form body (bounded by limits.max_body) and merges it with the
// URL parameters, as FHIR does; the merged set is what policy sees and what
// is forwarded, as one form body.
func (p *Proxy) classify(r *http.Request, t *target) (chartguard.Resource, error) {
	base := p.cfg.Upstream.FHIRBase
	rest, underBase := strings.CutPrefix(t.Path, base)
	if base == "" || !underBase || (rest != "" && rest[0] != '/') {
		return p.classifier.classifyRoute(r.Method, t.Path), nil
	}
	if r.Method == http.MethodPost && (rest == "/_search" || strings.HasSuffix(rest, "/_search")) {
		if err := p.mergeForm(r, t); err != nil {
			return chartguard.Resource{}, err
		}
	}
	res, ok := p.classifier.classifyFHIR(r.Method, rest, t.Params)
	if !ok {
		return res, fmt.Errorf("%w: not a FHIR interaction ChartGuard supports", errClassify)
	}
	return res, nil
}

// mergeForm reads an x-www-form-urlencoded search body into t.Params.
func (p *Proxy) mergeForm(r *http.Request, t *target) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return fmt.Errorf("%w: _search needs application/x-www-form-urlencoded", errUnsupported)
	}
	limit := p.cfg.Limits.MaxBody
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return fmt.Errorf("%w: reading body", errClassify)
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("%w: more than %d bytes", errTooLarge, limit)
	}
	bodyParams, err := parseQuery(string(body), p.cfg.Limits.MaxQueryParams)
	if err != nil {
		return err
	}
	merged := append(slices.Clone(t.Params), bodyParams...)
	if max := p.cfg.Limits.MaxQueryParams; max > 0 && len(merged) > max {
		return reject("more than %d query parameters", max)
	}
	seen := map[string]bool{}
	for _, prm := range merged {
		if singleValued[prm.Name] {
			if seen[prm.Name] {
				return reject("parameter %s repeated", prm.Name)
			}
			seen[prm.Name] = true
		}
	}
	t.Params, t.RawQuery, t.Form = merged, "", []byte(encodeParams(merged))
	return nil
}

// clientIP is the address of the client: the peer, or — when the peer is a
// trusted proxy — the right-most X-Forwarded-For hop that is not trusted.
//
// Security: X-Forwarded-For is client-controlled except for the hops our own
// proxies appended, which are on the right. Walking from the right and
// stopping at the first untrusted hop means a client cannot choose its
// address by sending the header. With trusted_proxies empty (the default) the
// header is ignored.
func (p *Proxy) clientIP(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := peer.Addr().Unmap()
	if !p.trusted(addr) {
		return addr.String()
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return addr.String() // malformed: keep the last address we trust
			}
			addr = hop.Unmap()
			if !p.trusted(addr) {
				return addr.String()
			}
		}
	}
	return addr.String()
}

func (p *Proxy) trusted(a netip.Addr) bool {
	for _, pfx := range p.cfg.trustedProxies {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// cors answers preflights from allowed origins and marks responses to them.
// It returns false when it has answered the request itself.
func (p *Proxy) cors(w http.ResponseWriter, r *http.Request, x *exchange) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	allowed := slices.Contains(p.cfg.CORS.AllowedOrigins, origin)
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	h := w.Header()
	h.Add("Vary", "Origin")
	if allowed {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "Location, ETag, Content-Location, X-Request-Id")
	}
	if !preflight {
		return true
	}
	if !allowed {
		p.respond(w, x, apiProblem{status: http.StatusForbidden, code: "forbidden", message: "origin not allowed"})
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE")
	h.Set("Access-Control-Allow-Headers", strings.Join(p.cfg.CORS.AllowedHeaders, ", "))
	h.Set("Access-Control-Max-Age", "600")
	p.commit(context.WithoutCancel(r.Context()), x, http.StatusNoContent, 0, true)
	w.WriteHeader(http.StatusNoContent)
	return false
}
