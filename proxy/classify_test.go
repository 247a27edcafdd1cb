package proxy

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

// classifyOnly builds a Proxy that can normalise and classify, nothing else.
func classifyOnly(t testing.TB) *Proxy {
	t.Helper()
	cfg := defaults()
	cfg.Limits.MaxBody = 1024
	cfg.publicURL, _ = url.Parse("https://emr.example.org")
	cfg.upstreamURL, _ = url.Parse("http://127.0.0.1:8081")
	p := &Proxy{cfg: &cfg, classifier: classifier{fhirBase: "/fhir",
		bases: []string{"https://emr.example.org/fhir", "http://127.0.0.1:8081/fhir"}}}
	r, err := compileRoute(0, RouteConfig{Path: "/chart/{patient}/notes", Methods: []string{"GET"},
		Resource: "DocumentReference", Action: "read"})
	require.NoError(t, err)
	p.classifier.routes = []route{r}
	return p
}

type classifyCase struct {
	name        string
	method      string // default GET
	target      string
	form        string // POST _search body
	ctype       string // default form
	wantStatus  int    // 0 = accepted; else the status the pipeline answers
	wantErr     string // substring of the client-visible message
	path, query string // canonical; query "-" means empty
	interaction string
	typ, id     string
	patients    []string
	status      string // patient status
	kind        string // default fhir
	action      string
}

func runClassify(p *Proxy, c classifyCase) (target, chartguard.Resource, int, error) {
	method := c.method
	if method == "" {
		method = http.MethodGet
	}
	t, err := normaliseTarget(c.target, p.cfg.Limits)
	if err != nil {
		return t, chartguard.Resource{}, http.StatusBadRequest, err
	}
	ctype := c.ctype
	if ctype == "" {
		ctype = "application/x-www-form-urlencoded"
	}
	r := &http.Request{Method: method, Header: http.Header{"Content-Type": {ctype}},
		Body: io.NopCloser(strings.NewReader(c.form))}
	res, err := p.classify(r, &t)
	if err != nil {
		return t, res, classifyProblem(err).status, err
	}
	return t, res, 0, nil
}

func TestNormaliseAndClassify(t *testing.T) {
	p := classifyOnly(t)
	known, unknown, none := chartguard.PatientsKnown, chartguard.PatientsUnknown, chartguard.PatientsNone
	manyParams := "/fhir/Observation?" + strings.Repeat("a=1&", 101)
	cases := []classifyCase{
		// --- rejections: ambiguity is refused, never fixed up ---
		{name: "encoded slash", target: "/fhir/Patient%2Fp1", wantStatus: 400, wantErr: "encoded '/'"},
		{name: "encoded slash lower", target: "/fhir/Patient%2fp1", wantStatus: 400, wantErr: "encoded '/'"},
		{name: "encoded backslash", target: "/fhir/Patient%5Cp1", wantStatus: 400, wantErr: "backslash"},
		{name: "raw backslash", target: `/fhir/Patient\p1`, wantStatus: 400, wantErr: "backslash"},
		{name: "dotdot", target: "/fhir/../admin", wantStatus: 400, wantErr: "dot segment"},
		{name: "dot", target: "/fhir/./Patient", wantStatus: 400, wantErr: "dot segment"},
		{name: "encoded dotdot", target: "/fhir/%2e%2e/admin", wantStatus: 400, wantErr: "dot segment"},
		{name: "encoded dotdot upper", target: "/fhir/%2E%2E/admin", wantStatus: 400, wantErr: "dot segment"},
		{name: "half encoded dotdot", target: "/fhir/.%2e/admin", wantStatus: 400, wantErr: "dot segment"},
		{name: "encoded dot", target: "/fhir/%2e/Patient", wantStatus: 400, wantErr: "dot segment"},
		{name: "trailing dotdot", target: "/fhir/Patient/p1/..", wantStatus: 400, wantErr: "dot segment"},
		{name: "double encoded dots", target: "/fhir/Patient/%252e%252e", wantStatus: 400, wantErr: "double"},
		{name: "double encoded NUL", target: "/fhir/Patient/p1%2500", wantStatus: 400, wantErr: "double"},
		{name: "percent in path", target: "/fhir/Patient/p1%25", wantStatus: 400, wantErr: "double"},
		{name: "NUL", target: "/fhir/Patient/p1%00", wantStatus: 400, wantErr: "control"},
		{name: "newline", target: "/fhir/Patient/p1%0a", wantStatus: 400, wantErr: "control"},
		{name: "DEL", target: "/fhir/Patient/p1%7f", wantStatus: 400, wantErr: "control"},
		{name: "raw control", target: "/fhir/Patient/p1\x01", wantStatus: 400, wantErr: "control"},
		{name: "raw space", target: "/fhir/Patient/p1 x", wantStatus: 400, wantErr: "control"},
		{name: "fragment", target: "/fhir/Patient/p1#frag", wantStatus: 400, wantErr: "fragment"},
		{name: "encoded hash path", target: "/fhir/Patient/p1%23x", wantStatus: 400, wantErr: "'#'"},
		{name: "encoded hash query", target: "/fhir/Observation?code=a%23b", wantStatus: 400, wantErr: "'#'"},
		{name: "path parameter", target: "/fhir/Patient;jsessionid=1/p1", wantStatus: 400, wantErr: "';'"},
		{name: "path parameter tail", target: "/fhir/Patient/p1;x", wantStatus: 400, wantErr: "';'"},
		{name: "encoded semicolon path", target: "/fhir/Patient%3Bx/p1", wantStatus: 400, wantErr: "';'"},
		{name: "semicolon query separator", target: "/fhir/Observation?patient=p1;patient=p2", wantStatus: 400, wantErr: "';'"},
		{name: "invalid escape", target: "/fhir/Patient/p1%zz", wantStatus: 400, wantErr: "percent-encoding"},
		{name: "truncated escape", target: "/fhir/Patient/p1%4", wantStatus: 400, wantErr: "percent-encoding"},
		{name: "invalid escape query", target: "/fhir/Observation?code=%zz", wantStatus: 400, wantErr: "percent-encoding"},
		{name: "repeated _count", target: "/fhir/Observation?_count=10&_count=20", wantStatus: 400, wantErr: "_count repeated"},
		{name: "repeated _format", target: "/fhir/Observation?_format=json&_format=xml", wantStatus: 400, wantErr: "_format repeated"},
		{name: "repeated _summary", target: "/fhir/Observation?_summary=true&_summary=false", wantStatus: 400, wantErr: "_summary repeated"},
		{name: "repeated _elements", target: "/fhir/Observation?_elements=id&_elements=code", wantStatus: 400, wantErr: "_elements repeated"},
		{name: "repeated _sort", target: "/fhir/Observation?_sort=date&_sort=-date", wantStatus: 400, wantErr: "_sort repeated"},
		{name: "_method parameter", target: "/fhir/Patient/p1?_method=DELETE", wantStatus: 400, wantErr: "_method"},
		{name: "too many params", target: manyParams, wantStatus: 400, wantErr: "more than 100"},
		{name: "target too long", target: "/fhir/Observation?code=" + strings.Repeat("a", 8200), wantStatus: 400, wantErr: "longer than"},
		{name: "encoded backslash query", target: "/fhir/Observation?code=a%5Cb", wantStatus: 400, wantErr: "backslash"},
		{name: "raw backslash query", target: `/fhir/Observation?code=a\,b`, wantStatus: 400, wantErr: "backslash"},
		{name: "double encoding query", target: "/fhir/Observation?code=%2541", wantStatus: 400, wantErr: "double"},
		{name: "NUL query", target: "/fhir/Observation?code=%00", wantStatus: 400, wantErr: "control"},
		{name: "invalid UTF-8", target: "/fhir/Patient/%C3%28", wantStatus: 400, wantErr: "UTF-8"},
		{name: "raw non-ASCII", target: "/fhir/Patient/\xc3\xa9", wantStatus: 400, wantErr: "non-ASCII"},
		{name: "asterisk form", method: "OPTIONS", target: "*", wantStatus: 400, wantErr: "origin-form"},
		{name: "absolute form", target: "http://evil/fhir/Patient/p1", wantStatus: 400, wantErr: "origin-form"},
		{name: "empty param name", target: "/fhir/Observation?=p1", wantStatus: 400, wantErr: "empty parameter"},
		{name: "odd param name", target: "/fhir/Observation?pa%3Ctient=p1", wantStatus: 400, wantErr: "parameter name"},
		{name: "lowercase type", target: "/fhir/patient/p1", wantStatus: 400, wantErr: "not a FHIR interaction"},
		{name: "too deep", target: "/fhir/Patient/p1/foo/bar", wantStatus: 400, wantErr: "not a FHIR interaction"},
		{name: "bad id", target: "/fhir/Patient/bad_id", wantStatus: 400, wantErr: "not a FHIR interaction"},
		{name: "long id", target: "/fhir/Patient/" + strings.Repeat("a", 65), wantStatus: 400, wantErr: "not a FHIR interaction"},
		{name: "POST to instance", method: "POST", target: "/fhir/Patient/p1", wantStatus: 400, wantErr: "not a FHIR interaction"},
		{name: "search json body", method: "POST", target: "/fhir/Observation/_search", ctype: "application/json", form: "{}", wantStatus: 415},
		{name: "search body too large", method: "POST", target: "/fhir/Observation/_search", form: "code=" + strings.Repeat("a", 1100), wantStatus: 413},
		{name: "search body repeats URL _count", method: "POST", target: "/fhir/Observation/_search?_count=2", form: "_count=1", wantStatus: 400, wantErr: "_count repeated"},
		{name: "search body _method", method: "POST", target: "/fhir/Observation/_search", form: "_method=DELETE", wantStatus: 400, wantErr: "_method"},

		// --- canonical forms ---
		{name: "double slashes collapse", target: "//fhir///Patient//p1", path: "/fhir/Patient/p1", query: "-", interaction: "read", typ: "Patient", id: "p1", patients: []string{"p1"}, status: known, action: "read"},
		{name: "unreserved escapes decode", target: "/fhir/Patient/%70%31", path: "/fhir/Patient/p1", query: "-", interaction: "read", typ: "Patient", id: "p1", patients: []string{"p1"}, status: known},
		{name: "query canonical encoding", target: "/fhir/Observation?code=http%3A%2F%2Floinc.org%7c1234-5&patient=p1", path: "/fhir/Observation", query: "code=http://loinc.org|1234-5&patient=p1", interaction: "search-type", typ: "Observation", patients: []string{"p1"}, status: known, action: "search"},
		{name: "plus is space", target: "/fhir/Observation?patient=p1&code:text=a+b", query: "patient=p1&code:text=a%20b", interaction: "search-type", typ: "Observation", patients: []string{"p1"}, status: known},
		{name: "empty params skipped", target: "/fhir/Observation?patient=p1&&", query: "patient=p1", interaction: "search-type", typ: "Observation", patients: []string{"p1"}, status: known},
		{name: "bare question mark", target: "/fhir/Observation?", path: "/fhir/Observation", query: "-", interaction: "search-type", typ: "Observation", status: unknown},
		{name: "param without value", target: "/fhir/Observation?patient", query: "patient=", interaction: "search-type", typ: "Observation", status: unknown},
		{name: "encoded semicolon in value is data", target: "/fhir/Observation?patient=p1%3Bpatient%3Dp2", query: "patient=p1%3Bpatient%3Dp2", interaction: "search-type", typ: "Observation", status: unknown},
		{name: "trailing slash kept", target: "/fhir/Patient/", path: "/fhir/Patient/", interaction: "search-type", typ: "Patient", status: unknown},
		{name: "percent alone in query is data", target: "/fhir/Observation?patient=p1&code:text=50%25", query: "patient=p1&code:text=50%25", interaction: "search-type", typ: "Observation", patients: []string{"p1"}, status: known},

		// --- FHIR interactions ---
		{name: "metadata", target: "/fhir/metadata", interaction: "capabilities", typ: "CapabilityStatement", status: none, action: "read"},
		{name: "smart configuration", target: "/fhir/.well-known/smart-configuration", interaction: "smart-configuration", status: none},
		{name: "read patient", target: "/fhir/Patient/p1", interaction: "read", typ: "Patient", id: "p1", patients: []string{"p1"}, status: known},
		{name: "head read", method: "HEAD", target: "/fhir/Patient/p1", interaction: "read", typ: "Patient", id: "p1", patients: []string{"p1"}, status: known},
		{name: "read observation by id", target: "/fhir/Observation/o1", interaction: "read", typ: "Observation", id: "o1", status: unknown},
		{name: "read practitioner", target: "/fhir/Practitioner/pr1", interaction: "read", typ: "Practitioner", id: "pr1", status: none},
		{name: "read type outside compartment", target: "/fhir/Task/t1", interaction: "read", typ: "Task", id: "t1", status: unknown},
		{name: "history instance", target: "/fhir/Patient/p1/_history", interaction: "history-instance", typ: "Patient", id: "p1", patients: []string{"p1"}, status: known, action: "history"},
		{name: "vread", target: "/fhir/Patient/p1/_history/2", interaction: "vread", typ: "Patient", id: "p1", patients: []string{"p1"}, status: known, action: "vread"},
		{name: "history type", target: "/fhir/Observation/_history", interaction: "history-type", typ: "Observation", status: unknown, action: "history"},
		{name: "history system", target: "/fhir/_history", interaction: "history-system", status: unknown, action: "history"},
		{name: "update", method: "PUT", target: "/fhir/Observation/o1", interaction: "update", typ: "Observation", id: "o1", status: unknown, action: "update"},
		{name: "patch", method: "PATCH", target: "/fhir/Observation/o1", interaction: "patch", typ: "Observation", id: "o1", status: unknown, action: "patch"},
		{name: "delete patient", method: "DELETE", target: "/fhir/Patient/p1", interaction: "delete", typ: "Patient", id: "p1", patients: []string{"p1"}, status: known, action: "delete"},
		{name: "create clinical", method: "POST", target: "/fhir/Observation", interaction: "create", typ: "Observation", status: unknown, action: "create"},
		{name: "create organization", method: "POST", target: "/fhir/Organization", interaction: "create", typ: "Organization", status: none},
		{name: "conditional update", method: "PUT", target: "/fhir/Observation?identifier=x", interaction: "update", typ: "Observation", status: unknown},
		{name: "conditional delete", method: "DELETE", target: "/fhir/Observation?patient=p1", interaction: "delete", typ: "Observation", status: unknown},
		{name: "search system", target: "/fhir?_type=Observation", interaction: "search-system", status: unknown, action: "search"},
		{name: "search system post", method: "POST", target: "/fhir/_search", form: "_type=Observation", interaction: "search-system", status: unknown},
		{name: "compartment search", target: "/fhir/Patient/p1/Observation", interaction: "search-compartment", typ: "Observation", patients: []string{"p1"}, status: known, action: "search"},
		{name: "compartment all types", target: "/fhir/Patient/p1/*", interaction: "search-compartment", typ: "*", patients: []string{"p1"}, status: known},
		{name: "compartment with chain stays bounded", target: "/fhir/Patient/p1/Observation?subject.name=x", interaction: "search-compartment", typ: "Observation", patients: []string{"p1"}, status: known},
		{name: "compartment with include", target: "/fhir/Patient/p1/Observation?_include=Observation:performer", interaction: "search-compartment", typ: "Observation", patients: []string{"p1"}, status: unknown},
		{name: "everything", target: "/fhir/Patient/p1/$everything", interaction: "operation", typ: "Patient", id: "p1", patients: []string{"p1"}, status: known, action: "operation"},
		{name: "everything type level", target: "/fhir/Patient/$everything", interaction: "operation", typ: "Patient", status: unknown},
		{name: "system export", target: "/fhir/$export", interaction: "operation", status: unknown, action: "export"},
		{name: "type export", target: "/fhir/Patient/$export", interaction: "operation", typ: "Patient", status: unknown, action: "export"},
		{name: "group export", target: "/fhir/Group/g1/$export", interaction: "operation", typ: "Group", id: "g1", status: unknown, action: "export"},
		{name: "group everything", target: "/fhir/Group/g1/$everything", interaction: "operation", typ: "Group", id: "g1", status: unknown, action: "operation"},
		{name: "patient export", target: "/fhir/Patient/p1/$export", interaction: "operation", typ: "Patient", id: "p1", patients: []string{"p1"}, status: known, action: "export"},
		{name: "export status poll", target: "/fhir/$export-poll-status?_jobId=j1", interaction: "operation", status: unknown, action: "export"},
		{name: "other instance operation on Patient", target: "/fhir/Patient/p1/$meta", interaction: "operation", typ: "Patient", id: "p1", patients: []string{"p1"}, status: known, action: "operation"},
		{name: "instance operation elsewhere", target: "/fhir/Observation/o1/$meta", interaction: "operation", typ: "Observation", id: "o1", status: unknown, action: "operation"},
		{name: "not an export", target: "/fhir/$exported", interaction: "operation", status: unknown, action: "operation"},
		{name: "batch", method: "POST", target: "/fhir", interaction: "batch", status: unknown, action: "operation"},

		// --- patients in searches ---
		{name: "patient", target: "/fhir/Observation?patient=p1", interaction: "search-type", typ: "Observation", patients: []string{"p1"}, status: known},
		{name: "subject reference", target: "/fhir/Observation?subject=Patient/p1", patients: []string{"p1"}, status: known, interaction: "search-type", typ: "Observation"},
		{name: "subject public URL", target: "/fhir/Observation?subject=https://emr.example.org/fhir/Patient/p1", patients: []string{"p1"}, status: known, interaction: "search-type", typ: "Observation"},
		{name: "subject upstream URL", target: "/fhir/Observation?subject=http%3A%2F%2F127.0.0.1%3A8081%2Ffhir%2FPatient%2Fp1", patients: []string{"p1"}, status: known, interaction: "search-type", typ: "Observation"},
		{name: "subject foreign URL", target: "/fhir/Observation?subject=http://evil/fhir/Patient/p1", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "patient not", target: "/fhir/Observation?patient:not=p1", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "patient missing", target: "/fhir/Observation?patient:missing=true", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "patient identifier modifier", target: "/fhir/Observation?patient:identifier=mrn|1", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "not next to a known patient", target: "/fhir/Observation?patient=p1&patient:not=p2", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "comma list is OR", target: "/fhir/Observation?patient=p1,p2", patients: []string{"p1", "p2"}, status: known, interaction: "search-type", typ: "Observation"},
		{name: "repeats are AND", target: "/fhir/Observation?patient=p1&patient=p2", patients: []string{"p1", "p2"}, status: known, interaction: "search-type", typ: "Observation"},
		{name: "chain", target: "/fhir/Observation?patient.identifier=mrn|123", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "subject Group modifier", target: "/fhir/Observation?subject:Group=g1", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "subject Patient modifier", target: "/fhir/Observation?subject:Patient=p1", patients: []string{"p1"}, status: known, interaction: "search-type", typ: "Observation"},
		{name: "Patient _id", target: "/fhir/Patient?_id=p2", patients: []string{"p2"}, status: known, interaction: "search-type", typ: "Patient"},
		{name: "Patient _id list", target: "/fhir/Patient?_id=p2,p3&name=x", patients: []string{"p2", "p3"}, status: known, interaction: "search-type", typ: "Patient"},
		{name: "Patient by name", target: "/fhir/Patient?name=smith", status: unknown, interaction: "search-type", typ: "Patient"},
		{name: "Patient _id not", target: "/fhir/Patient?_id:not=p2", status: unknown, interaction: "search-type", typ: "Patient"},
		{name: "Patient link", target: "/fhir/Patient?link=p1", status: unknown, interaction: "search-type", typ: "Patient"},
		{name: "_has", target: "/fhir/Observation?patient=p1&_has:Observation:patient:code=x", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "_filter", target: "/fhir/Observation?patient=p1&_filter=subject%20eq%20p2", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "_query", target: "/fhir/Observation?patient=p1&_query=all", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "_list", target: "/fhir/Observation?patient=p1&_list=l1", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "_text", target: "/fhir/Observation?patient=p1&_text=x", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "_content", target: "/fhir/Observation?patient=p1&_content=x", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "_include", target: "/fhir/Observation?patient=p1&_include=Observation:performer", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "_revinclude", target: "/fhir/Patient?_id=p1&_revinclude=Observation:subject", status: unknown, interaction: "search-type", typ: "Patient"},
		{name: "no patient param", target: "/fhir/Observation?code=1234", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "other param narrows", target: "/fhir/Observation?patient=p1&performer=Practitioner/pr1", patients: []string{"p1"}, status: known, interaction: "search-type", typ: "Observation"},
		{name: "modifier on other param", target: "/fhir/Observation?patient=p1&code:text=glucose", patients: []string{"p1"}, status: known, interaction: "search-type", typ: "Observation"},
		{name: "subject Group reference", target: "/fhir/Observation?subject=Group/g1", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "mixed list", target: "/fhir/Observation?patient=p1,Group/g1", status: unknown, interaction: "search-type", typ: "Observation"},
		{name: "plain id counts", target: "/fhir/Observation?subject=g1", patients: []string{"g1"}, status: known, interaction: "search-type", typ: "Observation"},
		{name: "compartment param", target: "/fhir/Condition?patient=p1&asserter=p2", patients: []string{"p1", "p2"}, status: known, interaction: "search-type", typ: "Condition"},
		{name: "beneficiary", target: "/fhir/Coverage?beneficiary=Patient/p3", patients: []string{"p3"}, status: known, interaction: "search-type", typ: "Coverage"},
		{name: "non-patient type", target: "/fhir/Organization?name=x", status: none, interaction: "search-type", typ: "Organization"},
		{name: "group member not a patient param", target: "/fhir/Group?member=p1", status: unknown, interaction: "search-type", typ: "Group"},
		{name: "POST _search merges URL and body", method: "POST", target: "/fhir/Observation/_search?patient=p1", form: "patient=p2&code=x", query: "-", patients: []string{"p1", "p2"}, status: known, interaction: "search-type", typ: "Observation"},
		{name: "POST _search body patient:not", method: "POST", target: "/fhir/Observation/_search?patient=p1", form: "patient:not=p2", status: unknown, interaction: "search-type", typ: "Observation"},

		// --- route rules for UI paths ---
		{name: "route match", target: "/chart/p1/notes", kind: "route", interaction: "read", typ: "DocumentReference", patients: []string{"p1"}, status: known, action: "read"},
		{name: "route wrong method", method: "POST", target: "/chart/p1/notes", kind: "route", status: unknown, action: "http"},
		{name: "route no match", target: "/other/page", kind: "route", status: unknown, action: "http"},
		{name: "base prefix only", target: "/fhirx/Patient", kind: "route", status: unknown, action: "http"},
	}
	require.GreaterOrEqual(t, len(cases), 100)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tg, res, status, err := runClassify(p, c)
			if c.wantStatus != 0 {
				require.Error(t, err)
				assert.Equal(t, c.wantStatus, status, "status")
				if c.wantErr != "" {
					assert.Contains(t, err.Error(), c.wantErr)
				}
				return
			}
			require.NoError(t, err)
			if c.path != "" {
				assert.Equal(t, c.path, tg.Path, "path")
			}
			switch c.query {
			case "":
			case "-":
				assert.Empty(t, tg.RawQuery, "query")
			default:
				assert.Equal(t, c.query, tg.RawQuery, "query")
			}
			kind := c.kind
			if kind == "" {
				kind = chartguard.KindFHIR
			}
			assert.Equal(t, kind, res.Kind, "kind")
			assert.Equal(t, c.interaction, res.Interaction, "interaction")
			assert.Equal(t, c.typ, res.Type, "type")
			assert.Equal(t, c.id, res.ID, "id")
			want := c.patients
			if want == nil {
				want = []string{}
			}
			assert.Equal(t, want, res.Patients, "patients")
			assert.Equal(t, c.status, res.PatientStatus, "patient_status")
			if c.action != "" {
				assert.Equal(t, c.action, res.Action, "action")
			}
		})
	}
}

func TestSearchPostForwardsOneBody(t *testing.T) {
	p := classifyOnly(t)
	tg, res, _, err := runClassify(p, classifyCase{method: "POST",
		target: "/fhir/Observation/_search?patient=p1&_count=5", form: "patient=p2&code=a+b"})
	require.NoError(t, err)
	assert.Equal(t, []string{"p1", "p2"}, res.Patients)
	assert.Empty(t, tg.RawQuery, "URL parameters move into the body")
	assert.Equal(t, "patient=p1&_count=5&patient=p2&code=a%20b", string(tg.Form))
}
