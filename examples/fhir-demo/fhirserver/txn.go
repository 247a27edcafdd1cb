package fhirserver

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// errIDTaken reports a transaction-assigned id found in use, which the
// order of a transaction rules out; the entry answers 500.
var errIDTaken = errors.New("fhirserver: transaction-assigned id already in use")

// txn is a transaction being applied. It holds s.mu for writing from before
// its first entry until after its last (or its rollback), so the handlers
// its entries are dispatched to take no lock of their own, and no other
// request sees it half applied. createID is the id the transaction assigned
// to the create being dispatched ("" if none).
type txn struct{ createID string }

// assignedID returns the id tx assigned to the create being dispatched,
// or "" outside a transaction.
func (tx *txn) assignedID() string {
	if tx == nil {
		return ""
	}
	return tx.createID
}

// lock and unlock take s.mu for writing, rlock and runlock for reading,
// unless tx, a transaction, already holds it.
func (s *Server) lock(tx *txn) {
	if tx == nil {
		s.mu.Lock()
	}
}

func (s *Server) unlock(tx *txn) {
	if tx == nil {
		s.mu.Unlock()
	}
}

func (s *Server) rlock(tx *txn) {
	if tx == nil {
		s.mu.RLock()
	}
}

func (s *Server) runlock(tx *txn) {
	if tx == nil {
		s.mu.RUnlock()
	}
}

// transaction applies entries all or nothing, in the R4 order (DELETE,
// POST, PUT and PATCH, then GET and HEAD; entry order within each), and
// answers a transaction-response whose entries follow the request's. If an
// entry fails, every change is rolled back and the answer is that entry's
// status and OperationOutcome.
//
// Security: the whole transaction runs under the store's write lock, so a
// large one stalls other requests for its duration; the Bundle's size,
// entry count and read budget bound it.
func (s *Server) transaction(w http.ResponseWriter, r *http.Request, entries []bundleEntry) {
	if err := checkTransaction(entries); err != nil {
		s.failErr(w, err)
		return
	}
	results := make([]entryResult, len(entries))
	budget := maxReadBytes
	tx := &txn{}
	s.mu.Lock()
	mark := s.mark()
	ids, aliases := s.assignIDs(entries)
	for _, i := range r4Order(entries) {
		e := &entries[i]
		tx.createID = ids[i]
		res := s.runEntry(r, e, resolveRefs(e.resource, aliases), tx, &budget)
		if !res.ok() {
			s.rollback(mark)
			s.mu.Unlock()
			s.writeRaw(w, res.status, entryFailure(res.body, i))
			return
		}
		results[i] = res
	}
	s.mu.Unlock()
	s.writeEntries(w, "transaction-response", results)
}

// checkTransaction refuses a transaction that changes one resource twice
// (R4 http.html, transaction processing rules: overlapping identities fail
// the transaction) or gives two entries the same urn:uuid fullUrl.
func checkTransaction(entries []bundleEntry) error {
	changed := map[string]bool{}
	fullURLs := map[string]bool{}
	for i := range entries {
		e := &entries[i]
		at := "Bundle.entry[" + strconv.Itoa(i) + "]"
		if strings.HasPrefix(e.fullURL, "urn:uuid:") {
			if fullURLs[e.fullURL] {
				return &httpError{status: http.StatusBadRequest, code: "invalid",
					msg: "two entries share a fullUrl", expr: at + ".fullUrl"}
			}
			fullURLs[e.fullURL] = true
		}
		switch e.method {
		case http.MethodDelete, http.MethodPut, http.MethodPatch:
		default:
			continue
		}
		if len(e.segs) != 2 {
			continue // not an instance: its handler refuses it
		}
		ref := e.segs[0] + "/" + e.segs[1]
		if changed[ref] {
			return &httpError{status: http.StatusBadRequest, code: "invalid",
				msg: "a transaction may change a resource only once", expr: at + ".request.url"}
		}
		changed[ref] = true
	}
	return nil
}

// r4Order returns the indexes of entries in the order a transaction
// processes them.
func r4Order(entries []bundleEntry) []int {
	rank := map[string]int{
		http.MethodDelete: 0, http.MethodPost: 1, http.MethodPut: 2, http.MethodPatch: 2,
		http.MethodGet: 3, http.MethodHead: 3,
	}
	order := make([]int, len(entries))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Compare(rank[entries[a].method], rank[entries[b].method])
	})
	return order
}

// assignIDs gives every create (POST Type) of a transaction its id up
// front, so that references to it can be resolved before anything is
// stored, and maps the urn:uuid fullUrl of each entry that creates or
// updates a resource (POST Type, PUT Type/id) to "Type/id". The caller
// holds s.mu for writing.
func (s *Server) assignIDs(entries []bundleEntry) (ids []string, aliases map[string]string) {
	ids = make([]string, len(entries))
	aliases = map[string]string{}
	for i := range entries {
		e := &entries[i]
		if len(e.segs) == 0 || s.specs[e.segs[0]] == nil {
			continue
		}
		var ref string
		switch {
		case e.method == http.MethodPost && len(e.segs) == 1:
			ids[i] = s.newID(s.types[e.segs[0]])
			ref = e.segs[0] + "/" + ids[i]
		case e.method == http.MethodPut && len(e.segs) == 2 && validID(e.segs[1]):
			ref = e.segs[0] + "/" + e.segs[1]
		}
		if ref != "" && strings.HasPrefix(e.fullURL, "urn:uuid:") {
			aliases[e.fullURL] = ref
		}
	}
	return ids, aliases
}

// resolveRefs returns resource with every Reference.reference that is a key
// of aliases replaced by its "Type/id". Anything that does not decode is
// returned unchanged, for its handler to refuse.
func resolveRefs(resource []byte, aliases map[string]string) []byte {
	if len(aliases) == 0 || resource == nil {
		return resource
	}
	dec := json.NewDecoder(bytes.NewReader(resource))
	dec.UseNumber() // keep decimals exactly as sent
	var v any
	if dec.Decode(&v) != nil || !errors.Is(dec.Decode(&struct{}{}), io.EOF) || !rewriteRefs(v, aliases) {
		return resource
	}
	out, err := json.Marshal(v)
	if err != nil {
		return resource
	}
	return out
}

// rewriteRefs rewrites the "reference" strings below v found in aliases and
// reports whether it changed any.
func rewriteRefs(v any, aliases map[string]string) bool {
	changed := false
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if ref, ok := x.(string); ok && k == "reference" {
				if to, ok := aliases[ref]; ok {
					t[k] = to
					changed = true
				}
				continue
			}
			changed = rewriteRefs(x, aliases) || changed
		}
	case []any:
		for _, x := range t {
			changed = rewriteRefs(x, aliases) || changed
		}
	}
	return changed
}

// storeMark is the store's state before a transaction: its rollback point.
type storeMark struct{ log, nextID int }

func (s *Server) mark() storeMark { return storeMark{log: len(s.log), nextID: s.nextID} }

// rollback undoes every commit since m, newest first, and restores the id
// counter. The caller has held s.mu for writing since m was taken, so no
// one has seen the versions it removes.
func (s *Server) rollback(m storeMark) {
	for i := len(s.log) - 1; i >= m.log; i-- {
		v := s.log[i]
		s.log[i] = nil
		ts := s.types[v.typ]
		e := ts.byID[v.id]
		e.versions[len(e.versions)-1] = nil
		e.versions = e.versions[:len(e.versions)-1]
		if len(e.versions) > 0 {
			continue
		}
		// The transaction created e; undone newest first, e is the
		// newest entry of its type.
		delete(ts.byID, v.id)
		if last := len(ts.order) - 1; last >= 0 && ts.order[last] == e {
			ts.order[last] = nil
			ts.order = ts.order[:last]
		} else {
			ts.order = slices.DeleteFunc(ts.order, func(x *entry) bool { return x == e })
		}
	}
	s.log = s.log[:m.log]
	s.nextID = m.nextID
}

// entryFailure is a failed transaction entry's OperationOutcome, saying
// that nothing was applied and pointing at the entry.
func entryFailure(body []byte, i int) []byte {
	var oo operationOutcome
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		oo = operationOutcome{ResourceType: "OperationOutcome",
			Issue: []outcomeIssue{{Severity: "error", Code: "exception", Diagnostics: "entry failed"}}}
	}
	for k := range oo.Issue {
		oo.Issue[k].Diagnostics = "transaction not applied: " + oo.Issue[k].Diagnostics
		if len(oo.Issue[k].Expression) == 0 {
			oo.Issue[k].Expression = []string{"Bundle.entry[" + strconv.Itoa(i) + "]"}
		}
	}
	return marshalOutcome(oo)
}
