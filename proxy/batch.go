package proxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/chartguard/chartguard/chartguard"
)

// Batch and transaction: POST [base] with a Bundle. Every entry is
// classified, proven and decided like a request of its own. A transaction
// with any denied entry is refused whole; a batch answers its denied entries
// itself (403 entries in the batch-response, in their places) and forwards
// the rest. The response's entries are then checked like any other
// response.

// batchEntry is one entry of the request Bundle.
type batchEntry struct {
	raw     map[string]json.RawMessage // re-emitted, with request.ifMatch set by the proof
	request map[string]json.RawMessage
	method  string
	url     string
	res     chartguard.Resource
	proofs  *proofs
	rewrite bool // request.url was absolute under a base: forward it relative
}

// batchState is what the response needs: which request entries were
// answered by ChartGuard, with which decision.
type batchState struct {
	transaction bool
	denied      map[int]chartguard.Decision
	total       int
	versions    []string // "Type/id" of forwarded vreads and instance histories (versions.go)
}

// serveBundle handles a batch or transaction request.
func (p *Proxy) serveBundle(w http.ResponseWriter, r *http.Request, x *exchange) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, p.cfg.Limits.MaxBatchBody))
	if err != nil {
		p.respond(w, x, apiProblem{status: http.StatusRequestEntityTooLarge, code: "too-costly",
			message: fmt.Sprintf("batch or transaction body larger than %d bytes (limits.max_batch_body)", p.cfg.Limits.MaxBatchBody)})
		return
	}
	kind, entries, pr := parseBundleRequest(body)
	if pr != nil {
		p.respond(w, x, *pr)
		return
	}
	st := &batchState{transaction: kind == "transaction", denied: map[int]chartguard.Decision{}, total: len(entries)}
	aliases := bundleAliases(entries)
	var kept []json.RawMessage
	var first *chartguard.Decision
	var asked []string // every entry's patients: what a refused transaction names
	for i := range entries {
		dec := p.decideEntry(r.Context(), x, &entries[i], aliases)
		asked = appendUnique(asked, entries[i].res.Patients...)
		if dec.Allow {
			// A batch's event names the patients of what went out; the
			// response check adds those of what came back.
			x.resource.Patients = appendUnique(x.resource.Patients, entries[i].res.Patients...)
		}
		if !dec.Allow {
			st.denied[i] = dec
			if first == nil {
				first = &dec
			}
			continue
		}
		if r := entries[i].res; (r.Interaction == iVread || r.Interaction == iHistoryInstance) && versionable(r.Type, r.ID) {
			st.versions = appendUnique(st.versions, r.Type+"/"+r.ID)
		}
		raw, err := entries[i].emit()
		if err != nil {
			p.respond(w, x, apiProblem{status: http.StatusBadRequest, code: "invalid", message: "a Bundle entry cannot be re-encoded"})
			return
		}
		kept = append(kept, raw)
	}
	x.resource.PatientStatus = chartguard.PatientsKnown
	if len(x.resource.Patients) == 0 {
		x.resource.PatientStatus = chartguard.PatientsNone
	}
	if first != nil && (st.transaction || len(kept) == 0) {
		// Refused whole: the event names whose records were asked for.
		x.decision = first
		x.resource.Patients = asked
		x.resource.PatientStatus = chartguard.PatientsKnown
		if len(asked) == 0 {
			x.resource.PatientStatus = chartguard.PatientsNone
		}
		p.respond(w, x, deniedEntries(st))
		return
	}
	if first != nil {
		x.decision = first
	} else if x.decision == nil {
		x.decision = &chartguard.Decision{Allow: true, Reasons: []string{}}
	}
	out, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": kind, "entry": kept})
	if err != nil {
		p.respond(w, x, apiProblem{status: http.StatusBadRequest, code: "invalid", message: "the Bundle cannot be re-encoded"})
		return
	}
	if p.cfg.Audit.FailClosed {
		if err := p.audit.Ready(); err != nil {
			p.respond(w, x, auditUnavailable())
			return
		}
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(out)), int64(len(out))
	r.Header.Set("Content-Length", strconv.Itoa(len(out)))
	x.batch = st
	p.forward(w, r, x)
}

// parseBundleRequest reads a batch or transaction Bundle.
func parseBundleRequest(body []byte) (string, []batchEntry, *apiProblem) {
	bad := func(msg string) (string, []batchEntry, *apiProblem) {
		return "", nil, &apiProblem{status: http.StatusBadRequest, code: "invalid", message: msg}
	}
	var b struct {
		ResourceType string            `json:"resourceType"`
		Type         string            `json:"type"`
		Entry        []json.RawMessage `json:"entry"`
	}
	if json.Unmarshal(body, &b) != nil || b.ResourceType != "Bundle" {
		return bad("POST to the FHIR base takes a Bundle of type batch or transaction")
	}
	if b.Type != "batch" && b.Type != "transaction" {
		return bad("the Bundle's type must be batch or transaction")
	}
	entries := make([]batchEntry, len(b.Entry))
	for i, raw := range b.Entry {
		e := &entries[i]
		if json.Unmarshal(raw, &e.raw) != nil || json.Unmarshal(e.raw["request"], &e.request) != nil || e.request == nil {
			return bad(fmt.Sprintf("Bundle entry %d has no request", i))
		}
		if json.Unmarshal(e.request["method"], &e.method) != nil || json.Unmarshal(e.request["url"], &e.url) != nil || e.url == "" {
			return bad(fmt.Sprintf("Bundle entry %d needs request.method and request.url", i))
		}
	}
	return b.Type, entries, nil
}

// bundleAliases maps the fullUrl of each Patient entry that has a known id
// to "Patient/<id>", so urn:uuid references to it name that patient. A new
// Patient without an id stays unresolved (its patients are unknown).
func bundleAliases(entries []batchEntry) map[string]string {
	aliases := map[string]string{}
	for _, e := range entries {
		var full string
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if json.Unmarshal(e.raw["fullUrl"], &full) != nil || full == "" ||
			json.Unmarshal(e.raw["resource"], &head) != nil || head.ResourceType != "Patient" {
			continue
		}
		id := head.ID
		if e.method == http.MethodPut {
			id, _ = strings.CutPrefix(e.url, "Patient/")
		}
		if isID(id) {
			aliases[full] = "Patient/" + id
		}
	}
	return aliases
}

// decideEntry classifies, proves and decides one entry; a problem with the
// entry itself is a denial with its reason.
func (p *Proxy) decideEntry(ctx context.Context, x *exchange, e *batchEntry, aliases map[string]string) chartguard.Decision {
	refuse := func(msg string) chartguard.Decision {
		return chartguard.Decision{Reasons: []string{msg}}
	}
	url := e.url
	for _, b := range p.classifier.bases {
		if rest, ok := strings.CutPrefix(url, b+"/"); ok {
			url = rest
			// Forwarded relative: the EMR does not know ChartGuard's address.
			e.url, e.rewrite = rest, true
		}
	}
	if strings.Contains(url, "://") || strings.HasPrefix(url, "/") {
		return refuse("entry URL must be relative to the FHIR base")
	}
	t, err := normaliseTarget(p.cfg.Upstream.FHIRBase+"/"+url, p.cfg.Limits)
	if err != nil {
		return refuse("entry URL rejected")
	}
	rest := strings.TrimPrefix(t.Path, p.cfg.Upstream.FHIRBase)
	res, ok := p.classifier.classifyFHIR(e.method, rest, t.Params)
	if !ok || res.Interaction == iBatch {
		return refuse("entry is not a FHIR interaction ChartGuard supports")
	}
	e.res = res
	if needsProof(&e.res) {
		body, bad := entryBody(e)
		if bad {
			return refuse("entry has no readable resource")
		}
		var ifMatch string
		_ = json.Unmarshal(e.request["ifMatch"], &ifMatch)
		pf, pr := p.prove(ctx, x, &e.res, body, ifMatch, aliases)
		if pr != nil {
			return refuse(pr.message)
		}
		if _, ok := e.request["ifNoneExist"]; ok {
			conditional(&e.res, pf)
		}
		e.proofs = pf
	}
	in := p.input(x)
	in.Request.Method, in.Request.Path, in.Request.Query = e.method, t.Path, t.query()
	return p.decideProven(ctx, x, &in, e.res, e.proofs)
}

// entryBody is the body a write entry carries: its resource, or for a
// patch the JSON Patch inside a Binary (FHIR R4 batch patch) or the
// FHIRPath Patch Parameters.
func entryBody(e *batchEntry) ([]byte, bool) {
	raw := e.raw["resource"]
	if e.res.Interaction == iDelete {
		return nil, false
	}
	if len(raw) == 0 {
		return nil, true
	}
	if e.res.Interaction == iPatch {
		var bin struct {
			ResourceType string `json:"resourceType"`
			Data         string `json:"data"`
		}
		if json.Unmarshal(raw, &bin) == nil && bin.ResourceType == "Binary" {
			patch, err := base64.StdEncoding.DecodeString(bin.Data)
			return patch, err != nil
		}
	}
	return raw, false
}

// emit re-encodes the entry, with request.ifMatch on the version decided
// and request.url relative to the base.
func (e *batchEntry) emit() (json.RawMessage, error) {
	if e.rewrite {
		v, _ := json.Marshal(e.url)
		e.request["url"] = v
	}
	if e.rewrite || (e.proofs != nil && e.proofs.ifMatch != "") {
		if e.proofs != nil && e.proofs.ifMatch != "" {
			v, _ := json.Marshal(e.proofs.ifMatch)
			e.request["ifMatch"] = v
		}
		req, err := json.Marshal(e.request)
		if err != nil {
			return nil, err
		}
		e.raw["request"] = req
	}
	return json.Marshal(e.raw)
}

// deniedEntries is the 403 for a transaction (or a batch whose every entry
// was denied): which entries, and why.
func deniedEntries(st *batchState) apiProblem {
	idx := make([]int, 0, len(st.denied))
	for i := range st.denied {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	var parts []string
	for _, i := range idx {
		parts = append(parts, fmt.Sprintf("entry %d: %s", i, joinReasons(st.denied[i].Reasons)))
	}
	what := "batch"
	if st.transaction {
		what = "transaction refused whole"
	}
	return apiProblem{status: http.StatusForbidden, code: "forbidden",
		message: fmt.Sprintf("access denied by policy (%s): %s", what, strings.Join(parts, "; "))}
}

// mergeDenied puts ChartGuard's 403 entries back into a batch-response in
// the places of the entries it did not forward.
func mergeDenied(body []byte, st *batchState) ([]byte, error) {
	var b map[string]json.RawMessage
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, err
	}
	var got []json.RawMessage
	if err := json.Unmarshal(b["entry"], &got); err != nil {
		return nil, err
	}
	if len(got) != st.total-len(st.denied) {
		return nil, fmt.Errorf("batch-response has %d entries for %d forwarded", len(got), st.total-len(st.denied))
	}
	out := make([]json.RawMessage, 0, st.total)
	for i := 0; i < st.total; i++ {
		dec, denied := st.denied[i]
		if !denied {
			out, got = append(out, got[0]), got[1:]
			continue
		}
		entry, err := json.Marshal(map[string]any{"response": map[string]any{
			"status": "403 Forbidden",
			"outcome": map[string]any{"resourceType": "OperationOutcome", "issue": []map[string]any{{
				"severity": "error", "code": "forbidden",
				"diagnostics": "access denied by policy: " + joinReasons(dec.Reasons)}}},
		}})
		if err != nil {
			return nil, err
		}
		out = append(out, entry)
	}
	entries, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	b["entry"] = entries
	return json.Marshal(b)
}
