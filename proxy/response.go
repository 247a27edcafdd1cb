package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/proxy/internal/fhirscan"
)

// The response phase. Most FHIR requests do not name their patient; only the
// response does (Observation/o1, Observation?code=x, _include, history,
// $everything). So for every FHIR request ChartGuard reads the whole
// response, asks the policy about every resource in it (phase "response"),
// drops what it may not deliver, and only then commits the audit event and
// sends the first byte. Whatever the check cannot read, it refuses.

// checksResponse reports whether the response to res is checked: every FHIR
// interaction but the server's own metadata.
func checksResponse(res *chartguard.Resource) bool {
	return res != nil && res.Kind == chartguard.KindFHIR &&
		res.Interaction != iCapabilities && res.Interaction != iSMARTConfig
}

// uncheckableHeaders would let the upstream answer with something the check
// cannot see whole: a byte range, or "not modified" (the client's cached copy,
// which may predate a denial).
var uncheckableHeaders = []string{"Range", "If-Range", "If-None-Match", "If-Modified-Since"}

// prepareChecked makes the upstream answer a checked request in a form the
// response check reads: FHIR JSON (no _format), unencoded, whole.
func prepareChecked(out *http.Request, t *target) {
	if hasParam(t.Params, "_format") {
		kept := slices.DeleteFunc(slices.Clone(t.Params), func(p param) bool { return p.Name == "_format" })
		if t.Form != nil {
			form := []byte(encodeParams(kept))
			out.Body = io.NopCloser(bytes.NewReader(form))
			out.ContentLength = int64(len(form))
			out.Header.Set("Content-Length", strconv.Itoa(len(form)))
		} else {
			out.URL.RawQuery = encodeParams(kept)
		}
	}
	out.Header.Set("Accept", "application/fhir+json")
	// identity: the check reads the whole body anyway, and between the
	// proxy and the EMR compression costs more CPU than it saves. An EMR
	// that gzips regardless is decoded by readUpstreamBody.
	out.Header.Set("Accept-Encoding", "identity")
	for _, h := range uncheckableHeaders {
		out.Header.Del(h)
	}
}

func hasParam(params []param, name string) bool {
	for _, p := range params {
		if p.Name == name {
			return true
		}
	}
	return false
}

// errUncheckable marks an upstream answer the response check cannot read;
// its message is safe to show.
var errUncheckable = errors.New("the EMR's answer cannot be checked")

func uncheckable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUncheckable, fmt.Sprintf(format, args...))
}

// checkResponse decides on every resource in resp and rewrites resp to what
// may be delivered. It returns the problem to answer instead when the
// response cannot go out: 403 when a single resource is denied, 502 when the
// answer cannot be checked (audited as an error).
func (p *Proxy) checkResponse(ctx context.Context, resp *http.Response, x *exchange) *apiProblem {
	if err := p.checkShape(resp); err != nil {
		return p.uncheckableProblem(x, err)
	}
	body, err := readUpstreamBody(resp, p.cfg.Limits.MaxFilterBody)
	if err != nil {
		return p.uncheckableProblem(x, err)
	}
	if len(body) == 0 {
		x.checked = true
		setBody(resp, nil)
		return nil
	}
	if !isFHIRJSON(resp.Header.Get("Content-Type")) {
		// Whatever its status (a gateway's HTML error page included).
		return p.uncheckableProblem(x, uncheckable("it is not FHIR JSON"))
	}
	opts := fhirscan.Options{Bases: p.classifier.bases, Rewrite: p.publicFHIRURL,
		KeepPositions: x.batch != nil} // a batch-response's entries answer the request's, in order
	current, err := p.currentLabels(ctx, x, body, opts)
	if err != nil {
		return p.uncheckableProblem(x, err)
	}
	decide := p.responseDecider(ctx, x, current)
	p.prefetchRelationships(ctx, x, body, opts)
	res, err := fhirscan.Filter(body, opts, decide)
	p.metrics.entriesWithheld.Add(float64(res.Denied))
	switch {
	case errors.Is(err, fhirscan.ErrDenied) && isWrite(x.resource) && resp.StatusCode < 300:
		// The write was decided before it went out and it happened; only
		// the stored resource the EMR echoes may not be shown (a physician
		// creating a Patient not yet on their care team). Say so with the
		// write's own status, so neither the client nor the audit is told
		// the write was refused.
		x.checked = true
		setBody(resp, outcomeBody(apiProblem{code: "suppressed", severity: "information",
			message: "the write was applied; the stored resource is not shown because you may not see it"}, x.requestID))
		resp.Header.Set("Content-Type", "application/fhir+json; charset=utf-8")
		return nil
	case errors.Is(err, fhirscan.ErrDenied):
		// The audit names whose record was asked for: a denied read is
		// what a privacy officer looks for.
		x.resource.Patients = appendUnique(x.resource.Patients, x.withheld...)
		if len(x.resource.Patients) > 0 {
			x.resource.PatientStatus = chartguard.PatientsKnown
		}
		pr := denied(*x.decision)
		return &pr
	case err != nil:
		return p.uncheckableProblem(x, uncheckable("its FHIR JSON is malformed"))
	}
	x.checked, x.exposed = true, res.Delivered
	if x.batch != nil && len(x.batch.denied) > 0 && resp.StatusCode == http.StatusOK {
		if res.Body, err = mergeDenied(res.Body, x.batch); err != nil {
			return p.uncheckableProblem(x, uncheckable("its batch-response does not match the batch"))
		}
	}
	setBody(resp, res.Body)
	if res.Denied > 0 {
		// The upstream's validators describe a body the client does not get.
		resp.Header.Del("ETag")
		resp.Header.Del("Last-Modified")
	}
	return nil
}

// checkShape refuses statuses and redirects the check cannot stand behind.
func (p *Proxy) checkShape(resp *http.Response) error {
	switch code := resp.StatusCode; {
	case code == http.StatusPartialContent:
		return uncheckable("a partial (206) response")
	case code == http.StatusNotModified:
		return uncheckable("a not-modified (304) response")
	case code >= 300 && code < 400:
		if loc := resp.Header.Get("Location"); loc != "" && !p.underPublic(loc) {
			return uncheckable("a redirect away from ChartGuard")
		}
	}
	switch ce := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); ce {
	case "", "identity", "gzip":
	default:
		return uncheckable("content encoding %q", truncate(ce, 32))
	}
	return nil
}

func (p *Proxy) uncheckableProblem(x *exchange, err error) *apiProblem {
	p.metrics.responseRefused.Inc()
	p.log.Warn("upstream response refused: cannot be checked", "request_id", x.requestID, "error", err)
	return &apiProblem{status: http.StatusBadGateway, code: "exception", message: err.Error()}
}

// readUpstreamBody reads the upstream body whole, gunzipping it, up to max bytes
// after decoding: a body the check cannot hold is refused, never passed on
// unchecked.
func readUpstreamBody(resp *http.Response, max int64) ([]byte, error) {
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if strings.EqualFold(strings.TrimSpace(resp.Header.Get("Content-Encoding")), "gzip") {
		zr, err := gzip.NewReader(resp.Body)
		if errors.Is(err, io.EOF) {
			return nil, nil // no body (HEAD, 204) under a gzip header
		}
		if err != nil {
			return nil, uncheckable("a gzip body that does not decode")
		}
		defer zr.Close()
		r = zr
	}
	body, err := io.ReadAll(io.LimitReader(r, max+1))
	switch {
	case err != nil:
		return nil, uncheckable("the body could not be read")
	case int64(len(body)) > max:
		return nil, uncheckable("larger than limits.max_filter_body (%d bytes)", max)
	}
	return body, nil
}

// setBody replaces resp's body with body (already checked and decoded).
func setBody(resp *http.Response, body []byte) {
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Del("Content-Encoding")
	resp.TransferEncoding = nil
	resp.Uncompressed = false
}

// replaceResponse turns resp into the problem pr; nothing of the upstream's
// answer but its request id survives.
func replaceResponse(resp *http.Response, pr apiProblem, requestID string) {
	_ = resp.Body.Close()
	body := outcomeBody(pr, requestID)
	h := http.Header{}
	for k, v := range pr.header {
		h[k] = v
	}
	h.Set("Content-Type", "application/fhir+json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	resp.Header, resp.Trailer = h, nil
	resp.StatusCode, resp.Status = pr.status, strconv.Itoa(pr.status)+" "+http.StatusText(pr.status)
	setBody(resp, body)
}

// isFHIRJSON accepts the media types of FHIR's JSON format.
func isFHIRJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/fhir+json" || mt == "application/json" || mt == "application/json+fhir")
}

// responseDecider asks the policy about one resource of the response, with
// the request's user, token, request and action. A denial or a policy
// error withholds the resource; the first denial is kept for the audit
// event and the 403.
func (p *Proxy) responseDecider(ctx context.Context, x *exchange, current currentVersions) fhirscan.Decide {
	in := p.input(x)
	action, interaction, operation := x.resource.Action, x.resource.Interaction, x.resource.Operation
	if x.batch != nil {
		// A batch-response discloses each entry's resource as a read would;
		// the entries' own actions were decided in the request phase.
		action, interaction, operation = "read", iRead, ""
	}
	return func(r fhirscan.Resource) (bool, error) {
		in.Resource = chartguard.Resource{Kind: chartguard.KindFHIR, Phase: chartguard.PhaseResponse,
			Type: r.Type, ID: r.ID, Patients: r.Patients, PatientStatus: r.PatientStatus,
			Action: action, Interaction: interaction, Operation: operation,
			Labels: current.labels(r.Labels, r.Type, r.ID)}
		dec := p.decide(ctx, x, &in)
		if !dec.Allow {
			if !x.responseDenied {
				x.responseDenied = true
				x.decision = &dec
			}
			x.withheld = appendUnique(x.withheld, r.Patients...)
		}
		return dec.Allow, nil
	}
}

// publicFHIRURL maps a URL under the upstream's FHIR base to the same URL
// under ChartGuard's, so paging links and fullUrls come back through the
// proxy; others are left as they are.
func (p *Proxy) publicFHIRURL(u string) string {
	up := p.cfg.upstreamURL.String() + p.cfg.Upstream.FHIRBase
	if rest, ok := strings.CutPrefix(u, up); ok && (rest == "" || rest[0] == '/' || rest[0] == '?') {
		return p.cfg.publicURL.String() + p.cfg.Upstream.FHIRBase + rest
	}
	return u
}

// rewriteLocations points Location and Content-Location at the proxy.
func (p *Proxy) rewriteLocations(h http.Header) {
	for _, k := range []string{"Location", "Content-Location"} {
		if v := h.Get(k); v != "" {
			h.Set(k, p.publicFHIRURL(v))
		}
	}
}

// underPublic reports whether a Location stays on ChartGuard: a relative
// reference without a host, or an absolute URL under public_url.
func (p *Proxy) underPublic(loc string) bool {
	u, err := url.Parse(loc)
	if err != nil || strings.Contains(loc, "\\") {
		return false
	}
	if u.Scheme == "" && u.Host == "" && u.User == nil {
		return !strings.HasPrefix(loc, "//")
	}
	pub := p.cfg.publicURL
	return strings.EqualFold(u.Scheme, pub.Scheme) && strings.EqualFold(u.Host, pub.Host) && u.User == nil &&
		(pub.Path == "" || u.Path == pub.Path || strings.HasPrefix(u.Path, strings.TrimSuffix(pub.Path, "/")+"/"))
}

// exposedPatients merges the request's patients with those of every
// resource the response delivered, for the audit event.
func exposedPatients(x *exchange) (patients, labels []string) {
	patients = slices.Clone(x.resource.Patients)
	for _, r := range x.exposed {
		patients = appendUnique(patients, r.Patients...)
		labels = appendUnique(labels, r.Labels...)
	}
	if labels == nil {
		labels = []string{}
	}
	slices.Sort(labels)
	return patients, labels
}

// isWrite: the interactions whose response echoes what was written.
func isWrite(res *chartguard.Resource) bool {
	switch res.Interaction {
	case iCreate, iUpdate, iPatch:
		return true
	}
	return false
}
