package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/proxy/internal/fhirscan"
)

// Writes. A create or update carries its patients in its body; an update,
// patch or delete by id changes a resource whose patients only the EMR
// knows. Before such a write is decided ChartGuard proves both: it reads the
// body, and it reads the current version as its own service identity. The
// policy decides on each (both must allow), and the write is forwarded with
// If-Match on the version that was decided, so nothing can change in
// between; the EMR's 412 becomes 409 for the client.

// proofs are the resources a write touches, each decided on its own.
type proofs struct {
	resources []chartguard.Resource
	ifMatch   string // the decided version, for If-Match; "" if none
}

// needsProof reports whether the write's patients come from its body or
// the current version rather than from the request line.
func needsProof(res *chartguard.Resource) bool {
	if res.Kind != chartguard.KindFHIR || res.Type == "" || nonPatientTypes[res.Type] {
		return false
	}
	switch res.Interaction {
	case iCreate:
		return true
	case iUpdate, iPatch, iDelete:
		return res.ID != "" // conditional writes are left to the policy (patients unknown)
	}
	return false
}

// proveWrite fills x.proofs for a write; it returns the problem to answer
// when the write cannot be proven.
func (p *Proxy) proveWrite(ctx context.Context, r *http.Request, x *exchange) *apiProblem {
	var body []byte
	if r.Body != nil && x.resource.Interaction != iDelete {
		b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, p.cfg.Limits.MaxBody))
		if err != nil {
			pr := classifyProblem(fmt.Errorf("%w: more than %d bytes", errTooLarge, p.cfg.Limits.MaxBody))
			return &pr
		}
		body = b
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	pf, pr := p.prove(ctx, x, x.resource, body, r.Header.Get("If-Match"), nil)
	if pr != nil {
		return pr
	}
	if r.Header.Get("If-None-Exist") != "" {
		conditional(x.resource, pf)
	}
	x.proofs = pf
	return nil
}

// conditional marks a conditional create (If-None-Exist): the EMR may
// answer with an existing resource that matches the condition, of any
// patient, instead of creating this one. Its patients cannot be proven, so
// the policy denies it unless it allows such writes explicitly.
func conditional(res *chartguard.Resource, pf *proofs) {
	res.PatientStatus = chartguard.PatientsUnknown
	for i := range pf.resources {
		pf.resources[i].PatientStatus = chartguard.PatientsUnknown
	}
}

// prove reads what a write touches — its body (create, update), the
// current version (update, patch, delete) — and adds their patients and
// labels to res. aliases resolve a batch's urn:uuid references.
func (p *Proxy) prove(ctx context.Context, x *exchange, res *chartguard.Resource, body []byte, clientIfMatch string,
	aliases map[string]string) (*proofs, *apiProblem) {
	var pf proofs
	switch res.Interaction {
	case iPatch:
		if pr := checkPatch(res.Type, body); pr != nil {
			return nil, pr
		}
	case iCreate, iUpdate:
		described, pr := p.describeBody(res, body, aliases)
		if pr != nil {
			return nil, pr
		}
		pf.resources = append(pf.resources, described)
	}
	if res.Interaction != iCreate {
		current, version, pr := p.fetchCurrent(ctx, x, res)
		if pr != nil {
			return nil, pr
		}
		if current != nil {
			pf.resources = append(pf.resources, *current)
			pf.ifMatch = version
		}
	}
	if clientIfMatch != "" && pf.ifMatch != "" && !sameVersion(clientIfMatch, pf.ifMatch) {
		return nil, &apiProblem{status: http.StatusConflict, code: "conflict",
			message: "the resource is not at the version given in If-Match"}
	}
	for _, r := range pf.resources {
		res.Patients = appendUnique(res.Patients, r.Patients...)
		res.Labels = appendUnique(res.Labels, r.Labels...)
	}
	res.PatientStatus = combinedStatus(pf.resources)
	return &pf, nil
}

// describeBody reads the resource a create or update sends: its type must
// be the URL's, and an update's id the URL's (FHIR R4 3.1.0.4). Its
// patients and labels include those of the resources it contains.
func (p *Proxy) describeBody(res *chartguard.Resource, body []byte, aliases map[string]string) (chartguard.Resource, *apiProblem) {
	var all []fhirscan.Resource
	opts := fhirscan.Options{Bases: p.classifier.bases, Aliases: aliases}
	_, err := fhirscan.Filter(body, opts, func(r fhirscan.Resource) (bool, error) {
		all = append(all, r)
		return true, nil
	})
	id, ok := bodyMatches(body, res)
	switch {
	case err != nil || len(all) == 0:
		return chartguard.Resource{}, &apiProblem{status: http.StatusBadRequest, code: "invalid",
			message: "the request body is not a FHIR JSON resource"}
	case !ok:
		return chartguard.Resource{}, &apiProblem{status: http.StatusBadRequest, code: "invalid",
			message: "the resource in the body does not match the request URL (type or id)"}
	}
	d := proofResource(res, fhirscan.Resource{Type: res.Type, ID: id, Patients: []string{}, Labels: []string{}})
	for _, r := range all {
		d.Patients = appendUnique(d.Patients, r.Patients...)
		d.Labels = appendUnique(d.Labels, r.Labels...)
	}
	d.PatientStatus = combinedStatus(toResources(res, all))
	return d, nil
}

// bodyMatches checks the body's own resourceType and id against the URL
// and returns the id.
func bodyMatches(body []byte, res *chartguard.Resource) (string, bool) {
	var head struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	if json.Unmarshal(body, &head) != nil || head.ResourceType != res.Type {
		return "", false
	}
	return head.ID, res.Interaction != iUpdate || head.ID == res.ID
}

func toResources(res *chartguard.Resource, rs []fhirscan.Resource) []chartguard.Resource {
	out := make([]chartguard.Resource, len(rs))
	for i, r := range rs {
		out[i] = proofResource(res, r)
	}
	return out
}

// proofResource is the request-phase resource for one proven resource.
func proofResource(req *chartguard.Resource, r fhirscan.Resource) chartguard.Resource {
	return chartguard.Resource{Kind: chartguard.KindFHIR, Phase: chartguard.PhaseRequest,
		Type: r.Type, ID: r.ID, Patients: r.Patients, PatientStatus: r.PatientStatus,
		Action: req.Action, Interaction: req.Interaction, Operation: req.Operation, Labels: r.Labels}
}

// combinedStatus: unknown if any is, else known if any names a patient.
func combinedStatus(rs []chartguard.Resource) string {
	status := chartguard.PatientsNone
	for _, r := range rs {
		switch r.PatientStatus {
		case chartguard.PatientsUnknown:
			return chartguard.PatientsUnknown
		case chartguard.PatientsKnown:
			status = chartguard.PatientsKnown
		}
	}
	return status
}

// fetchCurrent reads the current version of the resource a write targets,
// as ChartGuard's service identity. A missing resource is nil (an update
// may create it; a patch or delete of nothing is answered 404 here).
func (p *Proxy) fetchCurrent(ctx context.Context, x *exchange, res *chartguard.Resource) (*chartguard.Resource, string, *apiProblem) {
	u := p.cfg.upstreamURL.String() + p.cfg.Upstream.FHIRBase + "/" + res.Type + "/" + res.ID
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", p.fetchFailed(x, err)
	}
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("X-Request-Id", x.requestID)
	resp, err := p.upstream.Do(req)
	if err != nil {
		return nil, "", p.fetchFailed(x, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		_ = resp.Body.Close()
		if res.Interaction == iUpdate {
			return nil, "", nil
		}
		return nil, "", &apiProblem{status: http.StatusNotFound, code: "not-found", message: "no such resource"}
	case resp.StatusCode != http.StatusOK:
		_ = resp.Body.Close()
		return nil, "", p.fetchFailed(x, fmt.Errorf("status %d", resp.StatusCode))
	case !isFHIRJSON(resp.Header.Get("Content-Type")):
		_ = resp.Body.Close()
		return nil, "", p.fetchFailed(x, errors.New("not FHIR JSON"))
	}
	if err := p.checkShape(resp); err != nil {
		_ = resp.Body.Close()
		return nil, "", p.fetchFailed(x, err)
	}
	body, err := readUpstreamBody(resp, p.cfg.Limits.MaxFilterBody)
	if err != nil {
		return nil, "", p.fetchFailed(x, err)
	}
	current, pr := p.describeBody(&chartguard.Resource{Kind: res.Kind, Type: res.Type, ID: res.ID,
		Action: res.Action, Interaction: iUpdate, Operation: res.Operation}, body, nil)
	if pr != nil {
		return nil, "", p.fetchFailed(x, errors.New("the current version is not the resource asked for"))
	}
	current.Action, current.Interaction = res.Action, res.Interaction
	version := resp.Header.Get("ETag")
	if version == "" {
		var meta struct {
			Meta struct {
				VersionID string `json:"versionId"`
			} `json:"meta"`
		}
		if json.Unmarshal(body, &meta) == nil && meta.Meta.VersionID != "" {
			version = `W/"` + meta.Meta.VersionID + `"`
		}
	}
	return &current, version, nil
}

func (p *Proxy) fetchFailed(x *exchange, err error) *apiProblem {
	p.metrics.upstreamErrors.Inc()
	p.log.Warn("reading the current version for a write failed", "request_id", x.requestID, "error_class", errorClass(err))
	return &apiProblem{status: http.StatusBadGateway, code: "transient",
		message: "the current version of the resource could not be read to check this write"}
}

// sameVersion compares two entity tags by their version, weak or strong.
func sameVersion(a, b string) bool {
	trim := func(s string) string { return strings.Trim(strings.TrimPrefix(strings.TrimSpace(s), "W/"), `"`) }
	return trim(a) == trim(b)
}

// checkPatch refuses a patch that could move the resource to another
// patient or change its labels: one that touches a Patient-compartment
// reference, contained resources or meta. ChartGuard cannot apply every
// patch format itself, so it decides on the current version and allows
// only patches that leave those elements alone. JSON Patch
// (application/json-patch+json) paths and FHIRPath Patch (a Parameters
// resource) paths are both read; anything else is refused.
func checkPatch(typ string, body []byte) *apiProblem {
	paths, ok := patchPaths(typ, body)
	if !ok {
		return &apiProblem{status: http.StatusBadRequest, code: "invalid",
			message: "the patch is neither a JSON Patch nor a FHIRPath Patch ChartGuard can read"}
	}
	guarded := compartmentElements(typ)
	for _, path := range paths {
		if guarded[path] || path == "meta" || path == "contained" || path == "id" || path == "" {
			return &apiProblem{status: http.StatusForbidden, code: "forbidden",
				message: "a patch may not change the resource's patient references, meta, contained resources or id"}
		}
	}
	return nil
}

// patchPaths returns the top-level element each patch operation touches.
func patchPaths(typ string, body []byte) ([]string, bool) {
	var ops []struct {
		Path string  `json:"path"`
		From *string `json:"from"`
	}
	if json.Unmarshal(body, &ops) == nil && len(ops) > 0 {
		var out []string
		for _, op := range ops {
			out = append(out, jsonPointerHead(op.Path))
			if op.From != nil {
				out = append(out, jsonPointerHead(*op.From))
			}
		}
		return out, true
	}
	var params struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name string `json:"name"`
			Part []struct {
				Name        string `json:"name"`
				ValueString string `json:"valueString"`
			} `json:"part"`
		} `json:"parameter"`
	}
	if json.Unmarshal(body, &params) != nil || params.ResourceType != "Parameters" || len(params.Parameter) == 0 {
		return nil, false
	}
	var out []string
	for _, op := range params.Parameter {
		if op.Name != "operation" {
			return nil, false
		}
		found := false
		for _, part := range op.Part {
			if part.Name == "path" {
				found = true
				out = append(out, fhirPathHead(typ, part.ValueString))
			}
		}
		if !found {
			return nil, false
		}
	}
	return out, true
}

// jsonPointerHead is the first token of a JSON Pointer ("/subject/reference"
// -> "subject"), unescaped; "" for the whole document.
func jsonPointerHead(ptr string) string {
	head, _, _ := strings.Cut(strings.TrimPrefix(ptr, "/"), "/")
	return strings.ReplaceAll(strings.ReplaceAll(head, "~1", "/"), "~0", "~")
}

// fhirPathHead is the first element a FHIRPath Patch path names
// ("Observation.subject.reference" -> "subject"). Anything it cannot read
// plainly (functions, other roots) is "" and so refused.
func fhirPathHead(typ, path string) string {
	rest, ok := strings.CutPrefix(path, typ+".")
	if !ok {
		return ""
	}
	head, _, _ := strings.Cut(rest, ".")
	for i := 0; i < len(head); i++ {
		if c := head[i]; !(isAlnum(c) || c == '_') {
			return ""
		}
	}
	return head
}

// compartmentElements are the top-level elements of typ that hold its
// Patient-compartment references, from the response scanner's table.
func compartmentElements(typ string) map[string]bool {
	out := map[string]bool{}
	for _, path := range fhirscan.CompartmentPaths(typ) {
		head, _, _ := strings.Cut(path, ".")
		out[head] = true
	}
	if typ == "Patient" {
		out["link"] = true
	}
	return out
}
