package proxy

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/proxy/internal/fhirscan"
)

// Versions and the labels of the current one. FHIR security labels are
// per version: a record labelled restricted (or PSY) today may have
// versions from before the label. Every version a response discloses is
// therefore decided with the labels of its resource's current version as
// well as its own, so a label added later protects what came before it.
// A version is what a vread answers (the request's, or a batch entry's),
// and the resource of every entry of a history Bundle, wherever the
// response holds one: the answer to a history interaction, a history page
// reached through a server's paging link, a batch entry's history.
//
// The current versions are asked of the EMR as ChartGuard's service
// identity: a read for what a vread or an instance's history names; for
// the entries of history Bundles, one search by _id per type (at most
// idsPerSearch ids each, maxSearches in all), and a read of each resource
// the search did not return, to tell one that is gone (404, 410: its
// versions keep their own labels) from one the search left out. At most
// maxReads reads a response. Any other failure, or a response past those
// bounds, refuses the response as uncheckable (fail closed).

const (
	idsPerSearch = 50 // ids in one _id search (URL length)
	maxSearches  = 20 // _id searches for one response (1000 resources)
	maxReads     = 16 // resources of one response read one by one
)

// currentVersions maps "Type/id" to the labels of the resource's current
// version; a resource that is gone is absent.
type currentVersions map[string][]string

// currentLabels returns the current labels of the resources whose
// versions body (the EMR's answer to x) discloses, nil when it discloses
// none.
func (p *Proxy) currentLabels(ctx context.Context, x *exchange, body []byte, opts fhirscan.Options) (currentVersions, error) {
	if x.resource.Kind != chartguard.KindFHIR {
		return nil, nil
	}
	named := namedVersions(x)
	history := mayHoldHistory(x, body)
	if len(named) == 0 && !history {
		return nil, nil
	}
	l := lookups{cur: currentVersions{}, searches: maxSearches, reads: maxReads}
	for _, ref := range named {
		typ, id, _ := strings.Cut(ref, "/")
		if err := p.readCurrent(ctx, x, opts, &l, typ, id); err != nil {
			return nil, err
		}
	}
	if !history {
		return l.cur, nil
	}
	byType, err := versionsIn(body, opts)
	if err != nil {
		return nil, err
	}
	for _, typ := range slices.Sorted(maps.Keys(byType)) {
		var ids []string
		for _, id := range slices.Sorted(maps.Keys(byType[typ])) {
			if _, done := l.cur[typ+"/"+id]; !done && !slices.Contains(named, typ+"/"+id) {
				ids = append(ids, id)
			}
		}
		if err := p.searchCurrent(ctx, x, opts, &l, typ, ids); err != nil {
			return nil, err
		}
	}
	return l.cur, nil
}

// namedVersions returns the resources ("Type/id") whose versions the
// request asks for by name: a vread or an instance's history, the
// request's or a forwarded batch entry's.
func namedVersions(x *exchange) []string {
	if x.batch != nil {
		return x.batch.versions
	}
	if r := x.resource; (r.Interaction == iVread || r.Interaction == iHistoryInstance) && versionable(r.Type, r.ID) {
		return []string{r.Type + "/" + r.ID}
	}
	return nil
}

// versionable reports whether typ/id can name a resource to ask the EMR
// about ("." and ".." are FHIR ids but not path segments).
func versionable(typ, id string) bool {
	return isType(typ) && isID(id) && id != "." && id != ".."
}

// mayHoldHistory reports whether body may hold a history Bundle: the
// answer to a history interaction or a batch, or any answer whose bytes
// hold the string "history" or an escape (which could spell it). Other
// answers, most of them, are not scanned twice.
func mayHoldHistory(x *exchange, body []byte) bool {
	switch x.resource.Interaction {
	case iHistoryInstance, iHistoryType, iHistorySystem:
		return true
	}
	return x.batch != nil || bytes.Contains(body, []byte(`"history"`)) || bytes.Contains(body, []byte(`\u`))
}

// versionsIn returns the ids of the versions in the history Bundles of
// body, by type.
func versionsIn(body []byte, opts fhirscan.Options) (map[string]map[string]bool, error) {
	opts.Rewrite = nil
	byType := map[string]map[string]bool{}
	var bad bool
	// A malformed body is refused by the check that follows.
	_, _ = fhirscan.Filter(body, opts, func(res fhirscan.Resource) (bool, error) {
		switch {
		case !res.InHistory:
		case !versionable(res.Type, res.ID):
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

// lookups is what the current versions of one answer's versions are so
// far, and what may still be asked for them.
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
			if err := p.readCurrent(ctx, x, opts, l, typ, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// readCurrent adds the current version of typ/id to l.cur (nothing when
// it is gone).
func (p *Proxy) readCurrent(ctx context.Context, x *exchange, opts fhirscan.Options, l *lookups, typ, id string) error {
	if l.reads--; l.reads < 0 {
		return uncheckable("this answer holds too many versions to check")
	}
	body, status, err := p.getCurrent(ctx, x, "/"+typ+"/"+id)
	switch {
	case err != nil:
		return err
	case status == http.StatusNotFound || status == http.StatusGone:
		return nil
	case status != http.StatusOK:
		return uncheckable("the current version could not be read (status %d)", status)
	}
	if err := scanCurrent(body, opts, l.cur, typ, []string{id}); err != nil {
		return err
	}
	if _, ok := l.cur[typ+"/"+id]; !ok {
		return uncheckable("the current version is not the resource asked for")
	}
	return nil
}

// getCurrent sends GET rest (under the FHIR base) to the EMR as
// ChartGuard (getAsService) and returns the body of a 200, or the status.
func (p *Proxy) getCurrent(ctx context.Context, x *exchange, rest string) ([]byte, int, error) {
	u := p.cfg.upstreamURL.String() + p.cfg.Upstream.FHIRBase + rest
	body, status, err := getAsService(ctx, p.upstream, x.requestID, u, p.cfg.Limits.MaxFilterBody)
	switch {
	case errors.Is(err, errNotFHIRJSON):
		return nil, 0, uncheckable("the EMR's answer about the current version is not FHIR JSON")
	case errors.Is(err, errAnswerTooLarge):
		return nil, 0, uncheckable("the EMR's answer about the current version is larger than limits.max_filter_body")
	case err != nil:
		return nil, 0, uncheckable("the current version could not be read (%s)", errorClass(err))
	}
	return body, status, nil
}

// scanCurrent adds to cur the labels of the resources of typ with one of
// ids that body (a read or a searchset) is about; others (a search's
// OperationOutcome, a resource the search should not have matched, a
// contained or nested resource that merely carries the id) are ignored,
// not trusted.
func scanCurrent(body []byte, opts fhirscan.Options, cur currentVersions, typ string, ids []string) error {
	opts.Rewrite, opts.KeepPositions = nil, false
	_, err := fhirscan.Filter(body, opts, func(res fhirscan.Resource) (bool, error) {
		if res.Top && !res.InHistory && res.Type == typ && slices.Contains(ids, res.ID) {
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
