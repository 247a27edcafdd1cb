package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/chartguard/chartguard/chartguard"
)

// The EMR queries behind a relationship. Each answer is checked here, not
// only by the EMR's search: a FHIR server may ignore a search parameter it
// does not support (lenient handling) and return every CareTeam of the
// patient. ChartGuard asks for strict handling (Prefer: handling=strict)
// and still counts only resources that name the patient and the user
// themselves.

// fetch asks the EMR what user is to patient: who user is (identities),
// then four reads in parallel, under ctx's deadline.
func (r *relationships) fetch(ctx context.Context, requestID, user, patient string) (chartguard.Relationship, error) {
	now := r.now()
	since := now.Add(-r.lookback)
	var (
		team  bool
		enc   encounterFacts
		pcp   bool
		dept  string
		errs  [4]error
		group sync.WaitGroup
	)
	ids, err := r.identities(ctx, requestID, user)
	if err != nil {
		errs[0] = err
	} else {
		group.Go(func() { team, errs[0] = r.careTeams(ctx, requestID, ids, patient, now) })
		group.Go(func() { enc, errs[1] = r.encounters(ctx, requestID, ids, patient, since, now) })
		group.Go(func() { pcp, errs[2] = r.generalPractitioner(ctx, requestID, ids, patient) })
		group.Go(func() { dept, errs[3] = r.currentDepartment(ctx, requestID, patient) })
		group.Wait()
	}
	if err := errors.Join(errs[:]...); err != nil {
		if ctx.Err() != nil || errors.Is(err, errRelTimeout) {
			return chartguard.Relationship{}, errRelTimeout
		}
		return chartguard.Relationship{}, err
	}
	rel := chartguard.Relationship{CareTeam: team, PCP: pcp, Department: dept}
	if enc.found {
		days := max(int(now.Sub(enc.last)/(24*time.Hour)), 0)
		rel.EncounterDaysAgo = &days
	}
	return rel, nil
}

// reference is a FHIR Reference; only its reference string is read.
type reference struct {
	Reference string `json:"reference"`
}

type period struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// careTeams: CareTeam?participant=<user>&patient=<p>&status=active. An
// active CareTeam whose subject is the patient and that lists the user as
// a participant (whose participation has not ended) counts.
func (r *relationships) careTeams(ctx context.Context, requestID string, user who, patient string, now time.Time) (bool, error) {
	q := url.Values{"participant": {user.String()}, "patient": {"Patient/" + patient}, "status": {"active"}, "_count": {"50"}}
	entries, err := r.search(ctx, requestID, "CareTeam", q)
	if err != nil {
		return false, err
	}
	return r.onCareTeam(entries, user, patient, now), nil
}

// onCareTeam reports whether entries hold an active CareTeam of patient
// with user as a current participant.
func (r *relationships) onCareTeam(entries []json.RawMessage, user who, patient string, now time.Time) bool {
	for _, raw := range entries {
		var ct struct {
			ResourceType string    `json:"resourceType"`
			Status       string    `json:"status"`
			Subject      reference `json:"subject"`
			Participant  []struct {
				Member reference `json:"member"`
				Period period    `json:"period"`
			} `json:"participant"`
		}
		if json.Unmarshal(raw, &ct) != nil || ct.ResourceType != "CareTeam" || ct.Status != "active" ||
			r.localRef(ct.Subject.Reference) != "Patient/"+patient {
			continue
		}
		for _, pa := range ct.Participant {
			if user.names(r.localRef(pa.Member.Reference)) && pa.Period.current(now) {
				return true
			}
		}
	}
	return false
}

type encounterFacts struct {
	found bool
	last  time.Time // when the latest counted Encounter ended (or now, if under way)
}

// encounters: Encounter?participant=<user>&patient=<p>&date=ge<since>&
// date=le<today> (planned future visits would crowd the first page). An
// Encounter of the patient the user took part in (as
// participant.individual) counts when it was under way at or after since;
// planned, cancelled and entered-in-error ones do not.
func (r *relationships) encounters(ctx context.Context, requestID string, user who, patient string, since, now time.Time) (encounterFacts, error) {
	q := url.Values{"participant": {user.String()}, "patient": {"Patient/" + patient},
		"date":  {"ge" + since.UTC().Format("2006-01-02"), "le" + now.UTC().Format("2006-01-02")},
		"_sort": {"-date"}, "_count": {"50"}}
	entries, err := r.search(ctx, requestID, "Encounter", q)
	if err != nil {
		return encounterFacts{}, err
	}
	return r.lastEncounter(entries, user, patient, since, now), nil
}

// lastEncounter finds in entries the latest Encounter of patient that user
// took part in and that was under way at or after since.
func (r *relationships) lastEncounter(entries []json.RawMessage, user who, patient string, since, now time.Time) encounterFacts {
	var facts encounterFacts
	for _, raw := range entries {
		enc, ok := r.encounterOf(raw, patient)
		if !ok {
			continue
		}
		switch enc.Status {
		case "planned", "cancelled", "entered-in-error":
			continue
		}
		took := false
		for _, pa := range enc.Participant {
			took = took || user.names(r.localRef(pa.Individual.Reference))
		}
		last, ok := encounterTime(enc.Period, enc.Status, now)
		if !took || !ok || last.Before(since) {
			continue
		}
		if !facts.found || last.After(facts.last) {
			facts.found, facts.last = true, last
		}
	}
	return facts
}

// currentDepartment: Encounter?patient=<p>&status=in-progress. The
// patient's current department is the id of the serviceProvider
// Organization of their in-progress Encounter (the latest started, if
// several), whoever takes part in it; "" if none. The policy compares it
// with user.department, so an operator names departments by the EMR's
// Organization ids in the IdP's department claim.
func (r *relationships) currentDepartment(ctx context.Context, requestID, patient string) (string, error) {
	q := url.Values{"patient": {"Patient/" + patient}, "status": {"in-progress"}, "_count": {"50"}}
	entries, err := r.search(ctx, requestID, "Encounter", q)
	if err != nil {
		return "", err
	}
	return r.departmentOf(entries, patient), nil
}

// departmentOf is the serviceProvider Organization id of patient's latest
// started in-progress Encounter in entries, or "".
func (r *relationships) departmentOf(entries []json.RawMessage, patient string) string {
	var dept string
	var latest time.Time
	for _, raw := range entries {
		enc, ok := r.encounterOf(raw, patient)
		if !ok || enc.Status != "in-progress" {
			continue
		}
		org := organizationID(r.localRef(enc.ServiceProvider.Reference))
		start, _ := parseFHIRTime(enc.Period.Start)
		if org != "" && (dept == "" || start.After(latest)) {
			dept, latest = org, start
		}
	}
	return dept
}

// encounter is what the relationship lookups read of an Encounter.
type encounter struct {
	ResourceType    string    `json:"resourceType"`
	Status          string    `json:"status"`
	Subject         reference `json:"subject"`
	Period          period    `json:"period"`
	ServiceProvider reference `json:"serviceProvider"`
	Participant     []struct {
		Individual reference `json:"individual"`
	} `json:"participant"`
}

// encounterOf decodes raw, an entry of an Encounter search: ok when it is
// an Encounter of patient.
func (r *relationships) encounterOf(raw json.RawMessage, patient string) (enc encounter, ok bool) {
	if json.Unmarshal(raw, &enc) != nil || enc.ResourceType != "Encounter" ||
		r.localRef(enc.Subject.Reference) != "Patient/"+patient {
		return encounter{}, false
	}
	return enc, true
}

// encounterTime is when an Encounter last was under way: its end, now if
// it has none and is still going on, else its start.
func encounterTime(p period, status string, now time.Time) (time.Time, bool) {
	if end, ok := parseFHIRTime(p.End); ok {
		if end.After(now) {
			return now, true
		}
		return end, true
	}
	switch status {
	case "in-progress", "arrived", "triaged", "onleave":
		return now, true
	}
	return parseFHIRTime(p.Start)
}

// generalPractitioner: Patient/<p>; the user counts when the Patient lists
// them in generalPractitioner. A patient the EMR does not have (404, 410)
// has no relationship with anyone.
func (r *relationships) generalPractitioner(ctx context.Context, requestID string, user who, patient string) (bool, error) {
	body, status, err := r.get(ctx, requestID, r.base+"/Patient/"+patient)
	if err != nil {
		return false, err
	}
	if status == http.StatusNotFound || status == http.StatusGone {
		return false, nil
	}
	if status != http.StatusOK {
		return false, fmt.Errorf("%w: Patient read answered %d", errRelUpstream, status)
	}
	return r.isGP(body, user, patient)
}

// isGP reads a Patient resource: whether it is patient and lists user in
// generalPractitioner. Anything but that Patient is an error.
func (r *relationships) isGP(body []byte, user who, patient string) (bool, error) {
	var pt struct {
		ResourceType        string      `json:"resourceType"`
		ID                  string      `json:"id"`
		GeneralPractitioner []reference `json:"generalPractitioner"`
	}
	if json.Unmarshal(body, &pt) != nil || pt.ResourceType != "Patient" || pt.ID != patient {
		return false, fmt.Errorf("%w: Patient read is not the Patient asked for", errRelUpstream)
	}
	for _, gp := range pt.GeneralPractitioner {
		if user.names(r.localRef(gp.Reference)) {
			return true, nil
		}
	}
	return false, nil
}

// relMaxPages bounds the pages read of one search.
const relMaxPages = 4

// search runs a FHIR search and returns its match entries' resources,
// following the Bundle's next links. Any answer but a 200 searchset
// Bundle is an error, and so is a search with more than relMaxPages
// pages: a relationship on a page not read would be missed, and a miss is
// cached as "none".
func (r *relationships) search(ctx context.Context, requestID, typ string, q url.Values) ([]json.RawMessage, error) {
	u := r.base + "/" + typ + "?" + q.Encode()
	var out []json.RawMessage
	for page := 1; ; page++ {
		body, status, err := r.get(ctx, requestID, u)
		if err != nil {
			return nil, err
		}
		if status != http.StatusOK {
			return nil, &searchStatusError{typ, status}
		}
		entries, next, err := searchEntries(typ, body)
		if err != nil {
			return nil, err
		}
		out = append(out, entries...)
		switch ok := false; {
		case next == "":
			return out, nil
		case page == relMaxPages:
			return nil, fmt.Errorf("%w: %s search has more than %d pages", errRelUpstream, typ, relMaxPages)
		default:
			if u, ok = r.pageURL(next); !ok {
				return nil, fmt.Errorf("%w: %s search's next page is not under the FHIR base", errRelUpstream, typ)
			}
		}
	}
}

// pageURL maps a search's next link onto the upstream. The EMR may name
// itself by a base ChartGuard fronts (its public URL, say); a link under
// no such base is refused, so the service identity goes nowhere else.
func (r *relationships) pageURL(next string) (string, bool) {
	for _, b := range append([]string{r.base}, r.bases...) {
		rest, ok := strings.CutPrefix(next, b)
		if !ok || (rest != "" && rest[0] != '/' && rest[0] != '?') {
			continue
		}
		if path, _, _ := strings.Cut(rest, "?"); strings.Contains(path, "..") || strings.ContainsAny(rest, "#\\") {
			return "", false
		}
		return r.base + rest, true
	}
	return "", false
}

// searchEntries returns the resources of a searchset Bundle's match
// entries and its next link; anything else is an error.
func searchEntries(typ string, body []byte) ([]json.RawMessage, string, error) {
	var b struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Link         []struct {
			Relation string `json:"relation"`
			URL      string `json:"url"`
		} `json:"link"`
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
			Search   struct {
				Mode string `json:"mode"`
			} `json:"search"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" || b.Type != "searchset" {
		return nil, "", fmt.Errorf("%w: %s search did not answer a searchset Bundle", errRelUpstream, typ)
	}
	var out []json.RawMessage
	for _, e := range b.Entry {
		if e.Search.Mode == "" || e.Search.Mode == "match" {
			out = append(out, e.Resource)
		}
	}
	var next string
	for _, l := range b.Link {
		if l.Relation == "next" {
			next = l.URL
		}
	}
	return out, next, nil
}

// get reads u as the service identity (getAsService) and returns the
// FHIR JSON body and status; a body that is not FHIR JSON (on 200) or is
// larger than relMaxBody is an error.
func (r *relationships) get(ctx context.Context, requestID, u string) ([]byte, int, error) {
	body, status, err := getAsService(ctx, r.client, requestID, u, relMaxBody)
	switch {
	case errors.Is(err, errNotFHIRJSON):
		return nil, 0, fmt.Errorf("%w: answer is not FHIR JSON", errRelUpstream)
	case errors.Is(err, errAnswerTooLarge):
		return nil, 0, fmt.Errorf("%w: answer larger than %d bytes", errRelUpstream, relMaxBody)
	case err != nil:
		return nil, 0, transportError(ctx, err)
	}
	return body, status, nil
}

// transportError classifies a failed exchange with the EMR without its
// text, which holds the URL and so the user's and the patient's ids:
// errors are logged, and logs never name users or patients.
func transportError(ctx context.Context, err error) error {
	class := errorClass(err)
	if ctx.Err() != nil || class == "timeout" {
		return errRelTimeout
	}
	return fmt.Errorf("%w: transport (%s)", errRelUpstream, class)
}

// current reports whether now is within p. An open start or end is no
// bound; one that does not parse is not current (fail closed: a
// participation or role whose end cannot be read may have ended).
func (p period) current(now time.Time) bool {
	if p.End != "" {
		if end, ok := parseFHIRTime(p.End); !ok || end.Before(now) {
			return false
		}
	}
	if p.Start != "" {
		if start, ok := parseFHIRTime(p.Start); !ok || start.After(now) {
			return false
		}
	}
	return true
}

// parseFHIRTime parses a FHIR dateTime of any precision (year, month,
// day, or instant with zone); partial dates are their first instant, UTC.
func parseFHIRTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// organizationID is the id of an "Organization/id" reference, else "".
func organizationID(ref string) string {
	if id, ok := strings.CutPrefix(ref, "Organization/"); ok && fhirID.MatchString(id) {
		return id
	}
	return ""
}
