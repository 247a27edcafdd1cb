package proxy

import (
	"context"
	"net/http"
	"net/url"
	"slices"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/proxy/internal/fhirscan"
)

// Versions and the labels of the current one. FHIR security labels are
// per version: a record labelled restricted (or PSY) today may have
// versions from before the label. A vread or an instance's history is
// therefore decided with the labels of the resource's current version as
// well as each version's own, so a label added later protects what came
// before it.
//
// Accepted risk: history-type and history-system responses are decided on
// each version's own labels; covering them would take a read per resource
// in the response.

// currentLabels returns the labels of x's resource as it is now, for a
// vread or an instance's history (nil for anything else), read from the
// EMR as ChartGuard's service identity. A resource that is gone (404,
// 410) has none. Any other failure is an error, and the response is then
// refused as uncheckable (fail closed).
func (p *Proxy) currentLabels(ctx context.Context, x *exchange) ([]string, error) {
	r := x.resource
	if r.Kind != chartguard.KindFHIR || (r.Interaction != iVread && r.Interaction != iHistoryInstance) ||
		r.Type == "" || r.ID == "" {
		return nil, nil
	}
	u := p.cfg.upstreamURL.String() + p.cfg.Upstream.FHIRBase + "/" + url.PathEscape(r.Type) + "/" + url.PathEscape(r.ID)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, uncheckable("the current version could not be asked for")
	}
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("X-Request-Id", x.requestID)
	resp, err := p.upstream.Do(req)
	if err != nil {
		return nil, uncheckable("the current version could not be read (%s)", errorClass(err))
	}
	switch resp.StatusCode {
	case http.StatusNotFound, http.StatusGone:
		resp.Body.Close()
		return nil, nil
	case http.StatusOK:
	default:
		resp.Body.Close()
		return nil, uncheckable("the current version could not be read (status %d)", resp.StatusCode)
	}
	body, err := readUpstreamBody(resp, p.cfg.Limits.MaxFilterBody)
	if err != nil {
		return nil, err
	}
	var labels []string
	found := false
	_, err = fhirscan.Filter(body, fhirscan.Options{Bases: p.classifier.bases}, func(res fhirscan.Resource) (bool, error) {
		if res.Type == r.Type && res.ID == r.ID {
			labels, found = append(labels, res.Labels...), true
		}
		return true, nil
	})
	if err != nil || !found {
		return nil, uncheckable("the current version is not the resource asked for")
	}
	return labels, nil
}

// withCurrent is labels with those of the current version added, for a
// version of the resource (typ, id); labels otherwise.
func withCurrent(labels, current []string, typ, id, wantType, wantID string) []string {
	if len(current) == 0 || typ != wantType || id != wantID {
		return labels
	}
	out := slices.Concat(labels, current)
	slices.Sort(out)
	return slices.Compact(out)
}
