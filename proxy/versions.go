package proxy

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/proxy/internal/fhirscan"
)

// Versions and the labels of the current one. FHIR security labels are
// per version: a record labelled restricted (or PSY) today may have
// versions from before the label. Every version a response discloses — a
// vread, and the entries of an instance's, a type's or the system's
// history — is therefore decided with the labels of its resource's
// current version as well as its own, so a label added later protects
// what came before it.
//
// The current versions are read from the EMR as ChartGuard's service
// identity: one read for a vread or an instance's history; for a type's
// or the system's history, one search by _id per type (at most
// idsPerSearch ids each, maxSearches in all), and a read of each resource
// the search did not return, to tell one that is gone (404, 410: its
// versions keep their own labels) from one the search left out (at most
// maxGoneReads a response). Any other failure, or a page past those
// bounds, refuses the response as uncheckable (fail closed).

const (
	idsPerSearch = 50 // ids in one _id search (URL length)
	maxSearches  = 20 // _id searches for one history page (1000 resources)
	maxGoneReads = 16 // resources of one history page read one by one
)

// currentVersions maps "Type/id" to the labels of the resource's current
// version; a resource that is gone is absent.
type currentVersions map[string][]string

// currentLabels returns the current labels of the resources whose
// versions body (the EMR's answer to x) discloses: nil unless x is a
// vread or a history.
func (p *Proxy) currentLabels(ctx context.Context, x *exchange, body []byte, opts fhirscan.Options) (currentVersions, error) {
	r := x.resource
	if r.Kind != chartguard.KindFHIR {
		return nil, nil
	}
	switch r.Interaction {
	case iVread, iHistoryInstance:
		if r.Type == "" || r.ID == "" {
			return nil, nil
		}
		return p.readCurrent(ctx, x, opts, currentVersions{}, r.Type, r.ID)
	case iHistoryType, iHistorySystem:
		byType, err := versionsIn(body, opts)
		if err != nil {
			return nil, err
		}
		l := lookups{cur: currentVersions{}, searches: maxSearches, reads: maxGoneReads}
		for _, typ := range slices.Sorted(maps.Keys(byType)) {
			if err := p.searchCurrent(ctx, x, opts, &l, typ, slices.Sorted(maps.Keys(byType[typ]))); err != nil {
				return nil, err
			}
		}
		return l.cur, nil
	}
	return nil, nil
}

// versionsIn returns the ids of the resources in a history, by type.
func versionsIn(body []byte, opts fhirscan.Options) (map[string]map[string]bool, error) {
	opts.Rewrite = nil
	byType := map[string]map[string]bool{}
	var bad bool
	// A malformed body is refused by the check that follows.
	_, _ = fhirscan.Filter(body, opts, func(res fhirscan.Resource) (bool, error) {
		switch {
		case !isType(res.Type) || !isID(res.ID):
			bad = true
		case byType[res.Type] == nil:
			byType[res.Type] = map[string]bool{res.ID: true}
		default:
			byType[res.Type][res.ID] = true
		}
		return true, nil
	})
	if bad {
		return nil, uncheckable("a version in the history has no resource type or id")
	}
	return byType, nil
}

// lookups is what a history's check has found and may still ask.
type lookups struct {
	cur      currentVersions
	searches int // _id searches left
	reads    int // reads left, of resources a search did not return
}

// searchCurrent adds the current versions of the resources ids of typ to
// l.cur.
func (p *Proxy) searchCurrent(ctx context.Context, x *exchange, opts fhirscan.Options, l *lookups, typ string, ids []string) error {
	for chunk := range slices.Chunk(ids, idsPerSearch) {
		if l.searches--; l.searches < 0 {
			return uncheckable("this history page names too many resources to check; ask for fewer with _count")
		}
		// ids are FHIR ids ([A-Za-z0-9.-]), so the commas that separate
		// them are the only characters with a meaning in the query.
		rest := "/" + typ + "?_id=" + strings.Join(chunk, ",") + "&_count=" + strconv.Itoa(len(chunk))
		body, status, err := p.getCurrent(ctx, x, rest)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return uncheckable("the current versions could not be searched (status %d)", status)
		}
		if err := scanCurrent(body, opts, l.cur, typ, chunk); err != nil {
			return err
		}
		for _, id := range chunk {
			if _, ok := l.cur[typ+"/"+id]; ok {
				continue
			}
			if l.reads--; l.reads < 0 {
				return uncheckable("too many resources in the history are missing from the EMR's search to check")
			}
			if _, err := p.readCurrent(ctx, x, opts, l.cur, typ, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// readCurrent adds the current version of typ/id to cur (nothing when it
// is gone) and returns cur.
func (p *Proxy) readCurrent(ctx context.Context, x *exchange, opts fhirscan.Options, cur currentVersions, typ, id string) (currentVersions, error) {
	body, status, err := p.getCurrent(ctx, x, "/"+url.PathEscape(typ)+"/"+url.PathEscape(id))
	switch {
	case err != nil:
		return nil, err
	case status == http.StatusNotFound || status == http.StatusGone:
		return cur, nil
	case status != http.StatusOK:
		return nil, uncheckable("the current version could not be read (status %d)", status)
	}
	if err := scanCurrent(body, opts, cur, typ, []string{id}); err != nil {
		return nil, err
	}
	if _, ok := cur[typ+"/"+id]; !ok {
		return nil, uncheckable("the current version is not the resource asked for")
	}
	return cur, nil
}

// getCurrent sends GET rest (under the FHIR base) to the EMR as
// ChartGuard and returns the body of a 200, or the status.
func (p *Proxy) getCurrent(ctx context.Context, x *exchange, rest string) ([]byte, int, error) {
	u := p.cfg.upstreamURL.String() + p.cfg.Upstream.FHIRBase + rest
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, uncheckable("the current version could not be asked for")
	}
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("X-Request-Id", x.requestID)
	resp, err := p.upstream.Do(req)
	if err != nil {
		return nil, 0, uncheckable("the current version could not be read (%s)", errorClass(err))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, resp.StatusCode, nil
	}
	body, err := readUpstreamBody(resp, p.cfg.Limits.MaxFilterBody)
	return body, resp.StatusCode, err
}

// scanCurrent adds to cur the labels of the resources of typ with one of
// ids in body; others (a search's OperationOutcome, or a resource the
// search should not have matched) are ignored, not trusted.
func scanCurrent(body []byte, opts fhirscan.Options, cur currentVersions, typ string, ids []string) error {
	opts.Rewrite, opts.KeepPositions = nil, false
	_, err := fhirscan.Filter(body, opts, func(res fhirscan.Resource) (bool, error) {
		if res.Type == typ && slices.Contains(ids, res.ID) {
			k := typ + "/" + res.ID
			cur[k] = append(cur[k], res.Labels...)
		}
		return true, nil
	})
	if err != nil {
		return uncheckable("the current version is not FHIR JSON")
	}
	return nil
}

// labels returns a version's own labels with those of its resource's
// current version added.
func (c currentVersions) labels(own []string, typ, id string) []string {
	current := c[typ+"/"+id]
	if len(current) == 0 {
		return own
	}
	out := slices.Concat(own, current)
	slices.Sort(out)
	return slices.Compact(out)
}
