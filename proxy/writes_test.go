package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

// notP2 denies, in every phase, anything that touches patient p2.
func notP2(in *chartguard.Input) (chartguard.Decision, error) {
	if slices.Contains(in.Resource.Patients, "p2") || in.Resource.PatientStatus == chartguard.PatientsUnknown {
		return chartguard.Decision{Reasons: []string{"not on the patient's care team"}}, nil
	}
	return chartguard.Decision{Allow: true, Reasons: []string{}}, nil
}

// emr is a tiny versioned store of Observations for write tests.
type emr struct {
	mu        sync.Mutex
	resources map[string]string // id -> body
	writes    []string          // "METHOD id If-Match"
	failWrite int               // status to answer writes with, if set
}

func newEMR() *emr {
	return &emr{resources: map[string]string{
		"o1": `{"resourceType":"Observation","id":"o1","meta":{"versionId":"3"},"subject":{"reference":"Patient/p1"},"status":"final"}`,
		"o2": `{"resourceType":"Observation","id":"o2","meta":{"versionId":"7"},"subject":{"reference":"Patient/p2"},"status":"final"}`,
	}}
}

func (e *emr) handler(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id := strings.TrimPrefix(r.URL.Path, "/fhir/Observation/")
	w.Header().Set("Content-Type", "application/fhir+json")
	if r.Method == http.MethodGet {
		body, ok := e.resources[id]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}`)
			return
		}
		_, _ = io.WriteString(w, body)
		return
	}
	e.writes = append(e.writes, fmt.Sprintf("%s %s %s", r.Method, id, r.Header.Get("If-Match")))
	if e.failWrite != 0 {
		w.WriteHeader(e.failWrite)
		_, _ = io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"conflict"}]}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	if r.Method == http.MethodDelete {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method == http.MethodPatch {
		body = []byte(e.resources[id])
	}
	_, _ = w.Write(body)
}

func (e *emr) written() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.writes)
}

func TestWritesAreProvenBeforeTheyAreDecided(t *testing.T) {
	obs := func(id, patient string) string {
		return `{"resourceType":"Observation","id":"` + id + `","subject":{"reference":"Patient/` + patient + `"},"status":"amended"}`
	}
	tests := []struct {
		name, method, target, body string
		hdr                        map[string]string
		status                     int
		wantWrite                  string // what reached the EMR; "" for nothing
	}{
		{"update of an own patient's resource goes out with If-Match", "PUT", "/fhir/Observation/o1", obs("o1", "p1"), nil, 200, `PUT o1 W/"3"`},
		{"update moving p2's resource to p1 is denied (current version)", "PUT", "/fhir/Observation/o2", obs("o2", "p1"), nil, 403, ""},
		{"update moving p1's resource to p2 is denied (body)", "PUT", "/fhir/Observation/o1", obs("o1", "p2"), nil, 403, ""},
		{"update of a missing resource is decided on its body", "PUT", "/fhir/Observation/o9", obs("o9", "p1"), nil, 200, "PUT o9 "},
		{"update whose body id differs from the URL", "PUT", "/fhir/Observation/o1", obs("o5", "p1"), nil, 400, ""},
		{"update whose body is another type", "PUT", "/fhir/Observation/o1", `{"resourceType":"Condition","id":"o1","subject":{"reference":"Patient/p1"}}`, nil, 400, ""},
		{"update with a stale If-Match", "PUT", "/fhir/Observation/o1", obs("o1", "p1"), map[string]string{"If-Match": `W/"2"`}, 409, ""},
		{"update with the current If-Match", "PUT", "/fhir/Observation/o1", obs("o1", "p1"), map[string]string{"If-Match": `W/"3"`}, 200, `PUT o1 W/"3"`},
		{"delete of p2's resource is denied", "DELETE", "/fhir/Observation/o2", "", nil, 403, ""},
		{"delete of p1's resource goes out with If-Match", "DELETE", "/fhir/Observation/o1", "", nil, 204, `DELETE o1 W/"3"`},
		{"delete of nothing", "DELETE", "/fhir/Observation/o9", "", nil, 404, ""},
		{"create for p2 is denied", "POST", "/fhir/Observation", obs("", "p2"), nil, 403, ""},
		{"create with p2 in a contained resource is denied", "POST", "/fhir/Observation",
			`{"resourceType":"Observation","contained":[{"resourceType":"Observation","id":"c","subject":{"reference":"Patient/p2"}}],"subject":{"reference":"Patient/p1"}}`, nil, 403, ""},
		{"create that is not JSON", "POST", "/fhir/Observation", `<Observation/>`, nil, 400, ""},
		{"conditional create cannot prove its patient", "POST", "/fhir/Observation", obs("", "p1"),
			map[string]string{"If-None-Exist": "identifier=x"}, 403, ""},
		{"patch of the status goes out with If-Match", "PATCH", "/fhir/Observation/o1", `[{"op":"replace","path":"/status","value":"amended"}]`,
			map[string]string{"Content-Type": "application/json-patch+json"}, 200, `PATCH o1 W/"3"`},
		{"patch of the subject is refused", "PATCH", "/fhir/Observation/o1", `[{"op":"replace","path":"/subject/reference","value":"Patient/p2"}]`, nil, 403, ""},
		{"patch moving from the subject is refused", "PATCH", "/fhir/Observation/o1", `[{"op":"move","from":"/subject","path":"/note"}]`, nil, 403, ""},
		{"patch of meta is refused", "PATCH", "/fhir/Observation/o1", `[{"op":"remove","path":"/meta/security"}]`, nil, 403, ""},
		{"FHIRPath patch of the status", "PATCH", "/fhir/Observation/o1",
			`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Observation.status"},{"name":"value","valueCode":"amended"}]}]}`, nil, 200, `PATCH o1 W/"3"`},
		{"FHIRPath patch of the subject is refused", "PATCH", "/fhir/Observation/o1",
			`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Observation.subject"}]}]}`, nil, 403, ""},
		{"FHIRPath patch with a function path is refused", "PATCH", "/fhir/Observation/o1",
			`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Observation.where(true)"}]}]}`, nil, 403, ""},
		{"patch of p2's resource is denied", "PATCH", "/fhir/Observation/o2", `[{"op":"replace","path":"/status","value":"amended"}]`, nil, 403, ""},
		{"unreadable patch", "PATCH", "/fhir/Observation/o1", `{"not":"a patch"}`, nil, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newEMR()
			h := newHarness(t, notP2, nil, up.handler)
			hdr := good.Clone()
			for k, v := range tt.hdr {
				hdr.Set(k, v)
			}
			resp := h.do(t, tt.method, tt.target, hdr, tt.body)
			body := readBody(t, resp)
			require.Equal(t, tt.status, resp.StatusCode, body)
			var want []string
			if tt.wantWrite != "" {
				want = []string{tt.wantWrite}
			}
			assert.Equal(t, want, up.written())
			ev := lastEvent(t, h)
			assert.Equal(t, tt.status, ev.Request.Status)
			if tt.status == 403 {
				assert.Equal(t, chartguard.OutcomeDenied, ev.Outcome)
				assert.NotContains(t, body, `"subject"`)
			}
		})
	}
}

func TestWriteRaceBecomesConflict(t *testing.T) {
	up := newEMR()
	up.failWrite = http.StatusPreconditionFailed // changed between the read and the write
	h := newHarness(t, notP2, nil, up.handler)
	resp := h.do(t, "PUT", "/fhir/Observation/o1", good,
		`{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"},"status":"amended"}`)
	body := readBody(t, resp)
	assert.Equal(t, http.StatusConflict, resp.StatusCode, body)
	assert.Contains(t, body, "changed while ChartGuard checked")
	assert.Equal(t, []string{`PUT o1 W/"3"`}, up.written())
	assert.Equal(t, http.StatusConflict, lastEvent(t, h).Request.Status)
}

func TestServiceIdentityClientCredentials(t *testing.T) {
	var tokenCalls int
	var mu sync.Mutex
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tokenCalls++
		mu.Unlock()
		user, pass, ok := r.BasicAuth()
		if !ok || user != "chartguard-svc" || pass != "s3cret" || r.FormValue("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		assert.Equal(t, "system/*.rs", r.FormValue("scope"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"svc-token","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(idp.Close)
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret\n"), 0o600))

	up := newEMR()
	var auths []string
	var amu sync.Mutex
	h := newHarness(t, notP2, func(c *Config) {
		c.Upstream.Auth = UpstreamAuthConfig{Mode: "client_credentials", TokenURL: idp.URL,
			ClientID: "chartguard-svc", ClientSecretFile: secret, Scopes: []string{"system/*.rs"}}
	}, func(w http.ResponseWriter, r *http.Request) {
		amu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		amu.Unlock()
		up.handler(w, r)
	})
	for range 2 {
		resp := h.do(t, "PUT", "/fhir/Observation/o1", good,
			`{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}`)
		require.Equal(t, 200, resp.StatusCode, readBody(t, resp))
	}
	assert.Equal(t, []string{"Bearer svc-token", "Bearer svc-token", "Bearer svc-token", "Bearer svc-token"}, auths,
		"the proof read and the write both carry the service identity, never the client's token")
	assert.Equal(t, 1, tokenCalls, "the token is cached until it expires")
}

func TestClientCredentialsConfig(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("s"), 0o600))
	tests := []struct {
		name string
		auth UpstreamAuthConfig
		pass bool
		want []string
	}{
		{"complete", UpstreamAuthConfig{Mode: "client_credentials", TokenURL: "https://idp.example.org/token", ClientID: "c", ClientSecretFile: secret}, false, nil},
		{"missing everything", UpstreamAuthConfig{Mode: "client_credentials"}, false,
			[]string{"upstream.auth.token_url", "upstream.auth.client_id", "upstream.auth.client_secret_file"}},
		{"plain http off loopback", UpstreamAuthConfig{Mode: "client_credentials", TokenURL: "http://idp.example.org/token", ClientID: "c", ClientSecretFile: secret}, false,
			[]string{"upstream.auth.token_url: must be https"}},
		{"unreadable secret", UpstreamAuthConfig{Mode: "client_credentials", TokenURL: "https://idp.example.org/token", ClientID: "c", ClientSecretFile: secret + ".missing"}, false,
			[]string{"upstream.auth.client_secret_file: cannot read"}},
		{"with pass_authorization", UpstreamAuthConfig{Mode: "client_credentials", TokenURL: "https://idp.example.org/token", ClientID: "c", ClientSecretFile: secret}, true,
			[]string{"upstream.pass_authorization"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaults()
			cfg.PublicURL, cfg.Upstream.URL = "https://emr.example.org", "http://127.0.0.1:8081"
			cfg.Audit.Dir, cfg.Admin.Listen = t.TempDir(), ""
			cfg.Audit.SigningKeyFile = "unused.key" // validate only
			cfg.OIDC.Issuer, cfg.OIDC.ClientID = "https://idp.example.org", "chartguard"
			cfg.Upstream.Auth, cfg.Upstream.PassAuthorization = tt.auth, tt.pass
			err := cfg.validate()
			if tt.want == nil {
				require.NoError(t, err)
				assert.Equal(t, "s", cfg.upstreamSecret)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
