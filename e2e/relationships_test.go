//go:build unix

package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/e2e/internal/medplum"
	"github.com/chartguard/chartguard/examples/fhir-demo/devissuer"
	"github.com/chartguard/chartguard/policy"
	"github.com/chartguard/chartguard/proxy"
)

// Live care relationships (policy.relationships.source: fhir) against
// Medplum: the default policy's static care teams know none of Medplum's
// ids, so every relationship below comes from the EMR's CareTeam,
// Encounter and Patient.generalPractitioner, looked up by ChartGuard as
// its service identity.

// relWorld is Medplum seeded with one patient, her Observation and four
// physicians, with ChartGuard in front using the default policy.
type relWorld struct {
	e        *env
	mp       *medplum.Server
	up       *relFront
	patient  string
	obs      string
	team     string // on the patient's active CareTeam
	gp       string // the patient's generalPractitioner
	enc      string // took part in an Encounter two days ago, nothing else
	stranger string // nothing to do with the patient
	former   string // on an inactive CareTeam and in an Encounter a year ago
}

func startRelWorld(t *testing.T) *relWorld {
	t.Helper()
	mp := medplum.Start(t)
	w := &relWorld{mp: mp, up: &relFront{}}
	practitioner := func(family string) string {
		return "Practitioner/" + mpCreate(t, mp, "Practitioner",
			fmt.Sprintf(`{"resourceType":"Practitioner","name":[{"family":%q}]}`, family))
	}
	w.team, w.gp, w.enc = practitioner("Team"), practitioner("Gee-Pee"), practitioner("Enc")
	w.stranger, w.former = practitioner("Stranger"), practitioner("Former")
	w.patient = mpCreate(t, mp, "Patient", fmt.Sprintf(
		`{"resourceType":"Patient","name":[{"family":"Okafor"}],"generalPractitioner":[{"reference":%q}]}`, w.gp))
	mpCreate(t, mp, "CareTeam", careTeam(w.patient, w.team))
	mpCreate(t, mp, "CareTeam", strings.Replace(careTeam(w.patient, w.former), `"active"`, `"inactive"`, 1))
	mpCreate(t, mp, "Encounter", encounter(w.patient, w.enc, time.Now().Add(-48*time.Hour)))
	mpCreate(t, mp, "Encounter", encounter(w.patient, w.former, time.Now().Add(-365*24*time.Hour)))
	w.obs = mpCreate(t, mp, "Observation", heartRateObs(w.patient, 72, ""))

	w.e = startEnv(t, envOptions{
		upstreamURL: w.up.front(t, mp.URL),
		mutate: func(c *proxy.Config) {
			c.Policy.Relationships.Source = policy.RelationshipsFHIR
			// Generous for -race on a loaded 2-core machine; the default is 200ms.
			c.Policy.Relationships.Timeout = 5 * time.Second
			c.Policy.Relationships.NegativeTTL = 2 * time.Second
		},
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("chartguard log:\n" + w.e.logs.String())
		}
	})
	return w
}

func encounter(patient, practitioner string, end time.Time) string {
	return fmt.Sprintf(`{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/%s"},"participant":[{"individual":{"reference":%q}}],"period":{"start":%q,"end":%q}}`,
		patient, practitioner, end.Add(-time.Hour).UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
}

func (w *relWorld) physician(t *testing.T, fhirUser string) string {
	sub := "dr-" + strings.TrimPrefix(fhirUser, "Practitioner/")[:8]
	return w.e.token(t, "physician", sub, func(r *devissuer.TokenRequest) { r.FHIRUser = fhirUser })
}

// lookups counts the relationship reads ChartGuard made of Medplum.
func (w *relWorld) lookups() int {
	w.up.mu.Lock()
	defer w.up.mu.Unlock()
	n := 0
	for _, path := range w.up.paths {
		if strings.HasPrefix(path, "/fhir/CareTeam") || strings.HasPrefix(path, "/fhir/Encounter") ||
			strings.HasPrefix(path, "/fhir/Patient/") {
			n++
		}
	}
	return n
}

// relFront stands between ChartGuard and Medplum: it records the paths
// ChartGuard asks for and can refuse those under a prefix (an EMR fault).
type relFront struct {
	mu     sync.Mutex
	paths  []string
	prefix string
	status int
}

func (f *relFront) front(t *testing.T, target string) string {
	t.Helper()
	to, err := url.Parse(target)
	require.NoError(t, err)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(to)
		pr.Out.Host = pr.In.Host // Medplum's absolute URLs name the upstream ChartGuard knows
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.paths = append(f.paths, r.URL.Path)
		refuse := f.prefix != "" && strings.HasPrefix(r.URL.Path, f.prefix)
		status := f.status
		f.mu.Unlock()
		if refuse {
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"}]}`))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (f *relFront) refuse(prefix string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prefix, f.status = prefix, status
}

func TestMedplumRelationshipsCareTeam(t *testing.T) {
	w := startRelWorld(t)
	tok := w.physician(t, w.team)

	status, body, _ := w.e.call(t, "GET", "/fhir/Observation/"+w.obs, tok, nil, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, w.obs)
	ev := lastEvent(t, w.e)
	assert.Equal(t, "allowed", ev.Outcome)
	assert.Equal(t, []string{w.patient}, ev.Resource.Patients)
	assert.Equal(t, 4, w.lookups(), "CareTeam, Encounter (the user's, the patient's current) and Patient, once")

	// A search naming the patient: decided in the request phase on the
	// cached relationship, and again per entry; the EMR is not asked again.
	status, body, _ = w.e.call(t, "GET", "/fhir/Observation?subject=Patient/"+w.patient, tok, nil, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, w.obs)
	assert.Equal(t, 4, w.lookups(), "answered from the cache within policy.relationships.ttl")
	assert.Equal(t, 1.0, w.e.metric(t, `chartguard_relationship_lookups_total{outcome="miss"}`))
	assert.GreaterOrEqual(t, w.e.metric(t, `chartguard_relationship_lookups_total{outcome="hit"}`), 1.0)
}

func TestMedplumRelationshipsGeneralPractitioner(t *testing.T) {
	w := startRelWorld(t)
	status, body, _ := w.e.call(t, "GET", "/fhir/Observation/"+w.obs, w.physician(t, w.gp), nil, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, w.obs)
	assert.Equal(t, "allowed", lastEvent(t, w.e).Outcome)
}

func TestMedplumRelationshipsRecentEncounter(t *testing.T) {
	w := startRelWorld(t)
	status, body, _ := w.e.call(t, "GET", "/fhir/Observation/"+w.obs, w.physician(t, w.enc), nil, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, w.obs)
	assert.Equal(t, "allowed", lastEvent(t, w.e).Outcome)
}

func TestMedplumRelationshipsNoneIsDenied(t *testing.T) {
	w := startRelWorld(t)
	for _, who := range []string{w.stranger, w.former} {
		status, body, _ := w.e.call(t, "GET", "/fhir/Observation/"+w.obs, w.physician(t, who), nil, nil)
		assert.Equal(t, http.StatusForbidden, status, body)
		assert.NotContains(t, body, w.patient)
		ev := lastEvent(t, w.e)
		assert.Equal(t, "denied", ev.Outcome)
		require.NotNil(t, ev.Decision)
		assert.Contains(t, ev.Decision.Reasons, "not on the patient's care team")
		assert.Equal(t, []string{w.patient}, ev.Resource.Patients, "the audit names whose record was asked for")
	}
}

func TestMedplumRelationshipsEMRDownDenies(t *testing.T) {
	w := startRelWorld(t)
	tok := w.physician(t, w.team)
	status, body, _ := w.e.call(t, "GET", "/fhir/Observation?subject=Patient/"+w.patient, tok, nil, nil)
	require.Equal(t, http.StatusOK, status, body)

	// A patient ChartGuard has not looked up yet, asked while the EMR
	// refuses the lookup: denied by ChartGuard itself, fail closed.
	other := mpCreate(t, w.mp, "Patient", `{"resourceType":"Patient","name":[{"family":"Ng"}]}`)
	w.up.refuse("/fhir/CareTeam", http.StatusServiceUnavailable)
	status, body, _ = w.e.call(t, "GET", "/fhir/Observation?subject=Patient/"+other, tok, nil, nil)
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.Contains(t, body, "care relationship could not be checked")
	ev := lastEvent(t, w.e)
	assert.Equal(t, "denied", ev.Outcome)
	assert.Equal(t, []string{"care relationship could not be checked"}, ev.Decision.Reasons)
	assert.Equal(t, 1.0, w.e.metric(t, `chartguard_relationship_lookups_total{outcome="error"}`))
}

// TestMedplumRelationshipsPractitionerRole: an EMR that puts a clinician's
// PractitionerRole, not the Practitioner, on the care team relates the
// Practitioner who signs in.
func TestMedplumRelationshipsPractitionerRole(t *testing.T) {
	w := startRelWorld(t)
	doc := "Practitioner/" + mpCreate(t, w.mp, "Practitioner", `{"resourceType":"Practitioner","name":[{"family":"Roley"}]}`)
	role := mpCreate(t, w.mp, "PractitionerRole", fmt.Sprintf(`{"resourceType":"PractitionerRole","active":true,"practitioner":{"reference":%q}}`, doc))
	mpCreate(t, w.mp, "CareTeam", careTeam(w.patient, "PractitionerRole/"+role))

	status, body, _ := w.e.call(t, "GET", "/fhir/Observation/"+w.obs, w.physician(t, doc), nil, nil)
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, w.obs)
	assert.Equal(t, "allowed", lastEvent(t, w.e).Outcome)
}

// TestMedplumRelationshipsAddedToTeam: a physician denied for want of a
// relationship is let in within policy.relationships.negative_ttl of
// being put on the care team, not after the whole ttl.
func TestMedplumRelationshipsAddedToTeam(t *testing.T) {
	w := startRelWorld(t)
	doc := "Practitioner/" + mpCreate(t, w.mp, "Practitioner", `{"resourceType":"Practitioner","name":[{"family":"Newcomer"}]}`)
	tok := w.physician(t, doc)
	status, body, _ := w.e.call(t, "GET", "/fhir/Observation/"+w.obs, tok, nil, nil)
	require.Equal(t, http.StatusForbidden, status, body)

	mpCreate(t, w.mp, "CareTeam", careTeam(w.patient, doc))
	require.Eventually(t, func() bool {
		status, _, _ := w.e.call(t, "GET", "/fhir/Observation/"+w.obs, tok, nil, nil)
		return status == http.StatusOK
	}, 15*time.Second, 250*time.Millisecond, "allowed once the negative answer expires")
	assert.Equal(t, "allowed", lastEvent(t, w.e).Outcome)
}
