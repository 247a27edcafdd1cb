//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/e2e/internal/medplum"
	"github.com/chartguard/chartguard/examples/fhir-demo/devissuer"
)

// Response-side authorisation against Medplum, a FHIR server nobody here
// wrote: the scenarios of response_test.go, with ids Medplum assigns.

const (
	heartRate    = "http://loinc.org|8867-4"
	fhirJSONType = "application/fhir+json"
)

// medplumWorld is Medplum seeded directly, as the EMR's own administrator
// would, with ChartGuard in front of it. pr1 (a physician) is on A's care
// team only, in the EMR (a CareTeam resource) and in the policy data.
type medplumWorld struct {
	e    *env
	mp   *medplum.Server
	up   *upstreamLog
	A, B string   // Patient ids
	aObs []string // A's unlabelled heart-rate Observations
	aR   string   // A's heart-rate Observation labelled R (restricted)
	bObs []string // B's unlabelled heart-rate Observations
	bV   string   // B's heart-rate Observation labelled V (very restricted)
}

// startMedplumWorld starts Medplum, seeds it and starts ChartGuard in front
// of it with the default policy plus care_teams[Practitioner/pr1][A].
func startMedplumWorld(t *testing.T) *medplumWorld {
	t.Helper()
	mp := medplum.Start(t)
	w := &medplumWorld{mp: mp, up: &upstreamLog{}}
	w.A = mpCreate(t, mp, "Patient", `{"resourceType":"Patient","name":[{"family":"Adeyemi","given":["Ayo"]}]}`)
	w.B = mpCreate(t, mp, "Patient", `{"resourceType":"Patient","name":[{"family":"Brennan","given":["Bea"]}]}`)
	mpCreate(t, mp, "CareTeam", careTeam(w.A, "Practitioner/pr1"))
	mpCreate(t, mp, "CareTeam", careTeam(w.B, "Practitioner/pr2"))
	for i := range 2 {
		w.aObs = append(w.aObs, mpCreate(t, mp, "Observation", heartRateObs(w.A, 70+i, "")))
		w.bObs = append(w.bObs, mpCreate(t, mp, "Observation", heartRateObs(w.B, 80+i, "")))
	}
	w.aR = mpCreate(t, mp, "Observation", heartRateObs(w.A, 90, "R"))
	w.bV = mpCreate(t, mp, "Observation", heartRateObs(w.B, 95, "V"))

	w.e = startEnv(t, envOptions{
		upstreamURL: w.up.front(t, mp.URL),
		policyDir:   policyWithCareTeam(t, "Practitioner/pr1", w.A),
	})
	return w
}

// mine is every Observation of A that pr1 may see: not the restricted one,
// which needs break-the-glass even on the care team.
func (w *medplumWorld) mine() []string { return slices.Clone(w.aObs) }

// theirs is every Observation of B.
func (w *medplumWorld) theirs() []string { return append(slices.Clone(w.bObs), w.bV) }

func careTeam(patient, practitioner string) string {
	return fmt.Sprintf(`{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/%s"},"participant":[{"member":{"reference":%q}}]}`,
		patient, practitioner)
}

// heartRateObs is an Observation of patient with the shared LOINC code,
// labelled with the confidentiality code label unless it is "".
func heartRateObs(patient string, value int, label string) string {
	meta := ""
	if label != "" {
		meta = fmt.Sprintf(`"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":%q}]},`, label)
	}
	return fmt.Sprintf(`{"resourceType":"Observation",%s"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}],"text":"heart rate"},"subject":{"reference":"Patient/%s"},"valueQuantity":{"value":%d,"unit":"/min"}}`,
		meta, patient, value)
}

// mpCreate creates a resource in Medplum directly, bypassing ChartGuard.
func mpCreate(t *testing.T, mp *medplum.Server, typ, resource string) string {
	t.Helper()
	resp, err := client.Post(mp.FHIRURL()+"/"+typ, fhirJSONType, strings.NewReader(resource))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	return resourceID(t, string(body))
}

// mpGet reads from Medplum directly, bypassing ChartGuard.
func mpGet(t *testing.T, mp *medplum.Server, path string) string {
	t.Helper()
	resp, err := client.Get(mp.FHIRURL() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	return string(body)
}

// mpObservations lists the ids of patient's Observations, as Medplum holds them.
func mpObservations(t *testing.T, mp *medplum.Server, patient string) []string {
	t.Helper()
	var ids []string
	for _, en := range parseBundle(t, mpGet(t, mp, "/Observation?subject=Patient/"+patient)).Entry {
		ids = append(ids, en.Resource.ID)
	}
	slices.Sort(ids)
	return ids
}

// policyWithCareTeam copies the default policy (configs/policy, without its
// tests) into a temporary directory and puts fhirUser on the care teams of
// patients, keeping the rest of data.json as it is.
func policyWithCareTeam(t *testing.T, fhirUser string, patients ...string) string {
	t.Helper()
	src, dst := filepath.Join(repoRoot(t), "configs", "policy"), t.TempDir()
	rego, err := filepath.Glob(filepath.Join(src, "*.rego"))
	require.NoError(t, err)
	require.NotEmpty(t, rego)
	for _, f := range rego {
		if strings.HasSuffix(f, "_test.rego") {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o600))
	}
	raw, err := os.ReadFile(filepath.Join(src, "data.json"))
	require.NoError(t, err)
	var data map[string]map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &data))
	cg, ok := data["chartguard_data"]
	require.True(t, ok, "data.json has chartguard_data")
	teams := map[string]map[string]bool{}
	require.NoError(t, json.Unmarshal(cg["care_teams"], &teams))
	if teams[fhirUser] == nil {
		teams[fhirUser] = map[string]bool{}
	}
	for _, p := range patients {
		teams[fhirUser][p] = true
	}
	cg["care_teams"], err = json.Marshal(teams)
	require.NoError(t, err)
	out, err := json.Marshal(data)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dst, "data.json"), out, 0o600))
	return dst
}

// upstreamLog records what Medplum received from ChartGuard: it answers on
// its own loopback address and passes every request on unchanged, Host
// included, so Medplum's absolute URLs name the upstream ChartGuard knows.
type upstreamLog struct {
	mu   sync.Mutex
	reqs []upstreamRequest
}

type upstreamRequest struct{ Method, Path, Query, IfMatch string }

func (u *upstreamLog) front(t *testing.T, target string) string {
	t.Helper()
	to, err := url.Parse(target)
	require.NoError(t, err)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(to)
		pr.Out.Host = pr.In.Host
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, upstreamRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("If-Match")})
		u.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (u *upstreamLog) saw(method string) []upstreamRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []upstreamRequest
	for _, r := range u.reqs {
		if r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

// lastEvent is the audit event of the latest request.
func lastEvent(t *testing.T, e *env) chartguard.Event {
	t.Helper()
	evs := e.events(t)
	require.NotEmpty(t, evs)
	return evs[len(evs)-1]
}

// observationsOf splits a search Bundle's entries: the Observation ids, the
// ids of included Patients, and the number of outcome entries.
func observationsOf(t *testing.T, b searchBundle) (obs, patients []string, outcomes int) {
	t.Helper()
	for _, en := range b.Entry {
		switch {
		case en.Search.Mode == "outcome":
			assert.Equal(t, "OperationOutcome", en.Resource.ResourceType)
			outcomes++
		case en.Resource.ResourceType == "Observation":
			obs = append(obs, en.Resource.ID)
		case en.Resource.ResourceType == "Patient":
			assert.Equal(t, "include", en.Search.Mode)
			patients = append(patients, en.Resource.ID)
		default:
			t.Errorf("unexpected entry %s/%s", en.Resource.ResourceType, en.Resource.ID)
		}
	}
	slices.Sort(obs)
	return obs, patients, outcomes
}

// assertNoneOf fails if body holds any of ids.
func assertNoneOf(t *testing.T, body string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		assert.NotContains(t, body, id)
	}
}

func sorted(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func TestMedplumResponseReadByID(t *testing.T) {
	w := startMedplumWorld(t)
	tok := pr1(t, w.e)

	tests := []struct {
		name     string
		id       string
		status   int
		outcome  string
		patients []string
		reason   string // of a denial
	}{
		{"own patient", w.aObs[0], 200, chartguard.OutcomeAllowed, []string{w.A}, ""},
		{"own patient, restricted", w.aR, 403, chartguard.OutcomeDenied, []string{w.A}, "restricted record"},
		{"another patient", w.bObs[0], 403, chartguard.OutcomeDenied, []string{w.B}, "not on the patient's care team"},
		{"another patient, very restricted", w.bV, 403, chartguard.OutcomeDenied, []string{w.B}, "very restricted record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := w.e.call(t, "GET", "/fhir/Observation/"+tt.id, tok, nil, nil)
			require.Equal(t, tt.status, status, body)
			ev := lastEvent(t, w.e)
			assert.Equal(t, tt.outcome, ev.Outcome)
			assert.Equal(t, tt.id, ev.Resource.ID)
			assert.Equal(t, tt.patients, ev.Resource.Patients, "the audit names whose record it was")
			if tt.status == 200 {
				assert.Equal(t, tt.id, resourceID(t, body))
				return
			}
			assert.Contains(t, body, "OperationOutcome")
			assert.Contains(t, body, tt.reason)
			assertNoneOf(t, body, w.B, tt.id, "Brennan", `"valueQuantity"`)
			assert.Contains(t, ev.Decision.Reasons, tt.reason)
		})
	}
}

func TestMedplumResponseSearch(t *testing.T) {
	w := startMedplumWorld(t)
	tok := pr1(t, w.e)

	t.Run("entries of other patients are dropped", func(t *testing.T) {
		status, body, _ := w.e.call(t, "GET", "/fhir/Observation?code="+heartRate, tok, nil, nil)
		require.Equal(t, 200, status, body)
		b := parseBundle(t, body)
		obs, _, outcomes := observationsOf(t, b)
		assert.Equal(t, sorted(w.mine()), obs, "A's Observations but the restricted one")
		assert.Equal(t, 1, outcomes, "one outcome entry says results were suppressed")
		assert.Nil(t, b.Total, "total removed once entries were withheld")
		assertNoneOf(t, body, append(w.theirs(), w.B)...)
		for _, en := range b.Entry {
			if en.Resource.ResourceType == "Observation" {
				assert.True(t, strings.HasPrefix(en.FullURL, "https://emr.example.org/fhir/Observation/"), en.FullURL)
			}
		}
		ev := lastEvent(t, w.e)
		assert.Equal(t, chartguard.OutcomeAllowed, ev.Outcome)
		assert.Equal(t, []string{w.A}, ev.Resource.Patients, "the audit names the patients delivered")
	})

	t.Run("_include brings only permitted patients", func(t *testing.T) {
		status, body, _ := w.e.call(t, "GET", "/fhir/Observation?code="+heartRate+"&_include=Observation:subject", tok, nil, nil)
		require.Equal(t, 200, status, body)
		obs, patients, outcomes := observationsOf(t, parseBundle(t, body))
		assert.Equal(t, sorted(w.mine()), obs)
		assert.Equal(t, []string{w.A}, patients, "B's Patient is not included")
		assert.Equal(t, 1, outcomes)
		assertNoneOf(t, body, append(w.theirs(), w.B, "Brennan")...)
		assert.Equal(t, []string{w.A}, lastEvent(t, w.e).Resource.Patients)
	})

	for _, q := range []string{"patient:not=" + w.A, "subject:not=Patient/" + w.A} {
		t.Run(q, func(t *testing.T) {
			status, body, _ := w.e.call(t, "GET", "/fhir/Observation?"+q, tok, nil, nil)
			require.Equal(t, 200, status, body)
			obs, _, outcomes := observationsOf(t, parseBundle(t, body))
			assert.Empty(t, obs, "only B's Observations match; none may be shown")
			assert.Equal(t, 1, outcomes)
			assertNoneOf(t, body, append(w.theirs(), w.B)...)
			assert.Empty(t, lastEvent(t, w.e).Resource.Patients, "no patient's data left")
		})
	}

	t.Run("gzip and _format=xml", func(t *testing.T) {
		status, body, hdr := w.e.call(t, "GET", "/fhir/Observation?code="+heartRate+"&_format=xml", tok, nil,
			map[string]string{"Accept-Encoding": "gzip"})
		require.Equal(t, 200, status, body)
		assert.Empty(t, hdr.Get("Content-Encoding"), "ChartGuard answers what it checked, unencoded")
		assert.True(t, strings.HasPrefix(hdr.Get("Content-Type"), "application/fhir+json"), hdr.Get("Content-Type"))
		obs, _, outcomes := observationsOf(t, parseBundle(t, body))
		assert.Equal(t, sorted(w.mine()), obs)
		assert.Equal(t, 1, outcomes)
		assertNoneOf(t, body, append(w.theirs(), w.B)...)
	})
}

func TestMedplumResponsePaging(t *testing.T) {
	w := startMedplumWorld(t)
	tok := pr1(t, w.e)
	target := "/fhir/Observation?code=" + heartRate + "&_count=1"
	var seen []string
	pages := 0
	for target != "" {
		pages++
		require.LessOrEqual(t, pages, 20, "paging ends")
		status, body, _ := w.e.call(t, "GET", target, tok, nil, nil)
		require.Equal(t, 200, status, body)
		b := parseBundle(t, body)
		obs, _, _ := observationsOf(t, b)
		seen = append(seen, obs...)
		assertNoneOf(t, body, append(w.theirs(), w.B)...)
		target = ""
		for _, l := range b.Link {
			assert.True(t, strings.HasPrefix(l.URL, "https://emr.example.org/fhir/Observation?"), "%s link points at ChartGuard: %s", l.Relation, l.URL)
			if l.Relation == "next" {
				target = strings.TrimPrefix(l.URL, "https://emr.example.org")
			}
		}
	}
	assert.Greater(t, pages, 1, "the search was paged")
	assert.Equal(t, sorted(w.mine()), sorted(seen), "every page checked, A's Observations delivered once each")
}

func TestMedplumWritesAreDecidedOnWhatTheyTouch(t *testing.T) {
	w := startMedplumWorld(t)
	tok := pr1(t, w.e)
	ct := map[string]string{"Content-Type": fhirJSONType}
	put := func(id, patient string) string {
		return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"amended","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/%s"},"valueQuantity":{"value":61,"unit":"/min"}}`, id, patient)
	}
	version := func(id string) string {
		var r struct{ Meta struct{ VersionID string } }
		require.NoError(t, json.Unmarshal([]byte(mpGet(t, w.mp, "/Observation/"+id)), &r))
		require.NotEmpty(t, r.Meta.VersionID)
		return r.Meta.VersionID
	}

	// B's Observation, rewritten to name A: the current version decides.
	before := version(w.bObs[0])
	status, body, _ := w.e.call(t, "PUT", "/fhir/Observation/"+w.bObs[0], tok, strings.NewReader(put(w.bObs[0], w.A)), ct)
	assert.Equal(t, 403, status, body)
	assert.Equal(t, before, version(w.bObs[0]), "B's Observation is unchanged")
	assert.Equal(t, chartguard.OutcomeDenied, lastEvent(t, w.e).Outcome)
	assert.Empty(t, w.up.saw("PUT"), "the refused write never reached Medplum")

	// A's own Observation goes through, on the version decided.
	before = version(w.aObs[0])
	status, body, _ = w.e.call(t, "PUT", "/fhir/Observation/"+w.aObs[0], tok, strings.NewReader(put(w.aObs[0], w.A)), ct)
	require.Equal(t, 200, status, body)
	assert.Contains(t, body, `"amended"`)
	puts := w.up.saw("PUT")
	require.Len(t, puts, 1)
	assert.Equal(t, fmt.Sprintf(`W/"%s"`, before), puts[0].IfMatch, "written on the version decided")
	assert.NotEqual(t, before, version(w.aObs[0]), "the version advanced")
	ev := lastEvent(t, w.e)
	assert.Equal(t, "update", ev.Action)
	assert.Equal(t, []string{w.A}, ev.Resource.Patients)
}

func TestMedplumBundlesAreDecidedEntryByEntry(t *testing.T) {
	w := startMedplumWorld(t)
	tok := pr1(t, w.e)
	ct := map[string]string{"Content-Type": fhirJSONType}
	entry := func(p string) string {
		return fmt.Sprintf(`{"resource":%s,"request":{"method":"POST","url":"Observation"}}`, heartRateObs(p, 66, ""))
	}
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[` + entry(w.A) + `,` + entry(w.B) + `]}`
	aBefore, bBefore := mpObservations(t, w.mp, w.A), mpObservations(t, w.mp, w.B)

	status, body, _ := w.e.call(t, "POST", "/fhir", tok, strings.NewReader(tx), ct)
	assert.Equal(t, 403, status, body)
	assert.Contains(t, body, "entry 1")
	assert.Equal(t, chartguard.OutcomeDenied, lastEvent(t, w.e).Outcome)
	assert.Equal(t, aBefore, mpObservations(t, w.mp, w.A), "no part of the transaction was applied")
	assert.Empty(t, w.up.saw("POST"), "the transaction never reached Medplum")

	batch := strings.Replace(tx, `"transaction"`, `"batch"`, 1)
	status, body, _ = w.e.call(t, "POST", "/fhir", tok, strings.NewReader(batch), ct)
	require.Equal(t, 200, status, body)
	var resp struct {
		ResourceType, Type string
		Entry              []struct {
			Response struct{ Status, Location string }
		}
	}
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	assert.Equal(t, "Bundle", resp.ResourceType)
	assert.Equal(t, "batch-response", resp.Type)
	require.Len(t, resp.Entry, 2, body)
	assert.True(t, strings.HasPrefix(resp.Entry[0].Response.Status, "201"), body)
	assert.Equal(t, "403 Forbidden", resp.Entry[1].Response.Status)

	aAfter := mpObservations(t, w.mp, w.A)
	assert.Len(t, aAfter, len(aBefore)+1, "entry 0 created A's Observation")
	assert.Equal(t, bBefore, mpObservations(t, w.mp, w.B), "entry 1 never reached Medplum")
	posts := w.up.saw("POST")
	require.Len(t, posts, 1, "only the batch went out")
	assert.Equal(t, "/fhir", posts[0].Path)
	// The batch's event (a 200) names the patients whose data went out and
	// came back: A only. B's entry never left ChartGuard.
	ev := lastEvent(t, w.e)
	assert.Equal(t, []string{w.A}, ev.Resource.Patients)
}

func TestMedplumNurseOffTheCareTeamSeesNeither(t *testing.T) {
	w := startMedplumWorld(t)
	tok := w.e.token(t, "nurse", "rn-pr7", func(r *devissuer.TokenRequest) { r.FHIRUser = "Practitioner/pr7" })

	for _, id := range []string{w.aObs[0], w.aR, w.bObs[0], w.bV} {
		status, body, _ := w.e.call(t, "GET", "/fhir/Observation/"+id, tok, nil, nil)
		assert.Equal(t, 403, status, body)
		assertNoneOf(t, body, id, w.A, w.B)
	}
	status, body, _ := w.e.call(t, "GET", "/fhir/Observation?code="+heartRate+"&_include=Observation:subject", tok, nil, nil)
	require.Equal(t, 200, status, body)
	obs, patients, outcomes := observationsOf(t, parseBundle(t, body))
	assert.Empty(t, obs)
	assert.Empty(t, patients)
	assert.Equal(t, 1, outcomes)
	assertNoneOf(t, body, append(append(w.mine(), w.theirs()...), w.aR, w.A, w.B)...)
	ev := lastEvent(t, w.e)
	assert.Equal(t, "rn-pr7", ev.User.Subject)
	assert.Empty(t, ev.Resource.Patients)
}
