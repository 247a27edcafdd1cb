package fhirscan

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// denyRestricted denies resources labelled R or belonging to patient px.
func denyRestricted(r Resource) (bool, error) {
	return !slices.Contains(r.Labels, "R") && !slices.Contains(r.Patients, "px"), nil
}

// decoded unmarshals a JSON body into a generic value.
func decoded(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(body, &v), "output must be valid JSON: %s", body)
	return v
}

func entryIDs(t *testing.T, bundle map[string]any) []string {
	t.Helper()
	var ids []string
	entries, _ := bundle["entry"].([]any)
	for _, e := range entries {
		res, _ := e.(map[string]any)["resource"].(map[string]any)
		if res == nil {
			ids = append(ids, "-")
			continue
		}
		if id, ok := res["id"].(string); ok {
			ids = append(ids, id)
		} else {
			ids = append(ids, res["resourceType"].(string))
		}
	}
	return ids
}

const labelR = `"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}`

func TestFilterSingle(t *testing.T) {
	t.Run("allowed resource is sent byte for byte", func(t *testing.T) {
		body := []byte("  {\"resourceType\" : \"Observation\",\n \"id\":\"o1\", \"subject\":{\"reference\":\"Patient/p1\"},\"valueQuantity\":{\"value\":1.50e0}}\n")
		res, err := Filter(body, Options{Rewrite: strings.ToUpper}, denyRestricted)
		require.NoError(t, err)
		assert.Equal(t, body, res.Body)
		assert.False(t, res.Bundle)
		assert.Zero(t, res.Denied)
		assert.Equal(t, []Resource{{Type: "Observation", ID: "o1", Patients: []string{"p1"}, PatientStatus: PatientsKnown, Labels: []string{}, Top: true}}, res.Delivered)
	})
	t.Run("denied resource", func(t *testing.T) {
		res, err := Filter([]byte(`{"resourceType":"Observation","id":"o1",`+labelR+`}`), Options{}, denyRestricted)
		require.ErrorIs(t, err, ErrDenied)
		assert.Nil(t, res.Body)
		assert.Equal(t, 1, res.Denied)
	})
	t.Run("denied contained resource denies the container", func(t *testing.T) {
		body := `{"resourceType":"MedicationRequest","id":"m1","contained":[{"resourceType":"Medication","id":"med",` + labelR + `}],"subject":{"reference":"Patient/p1"}}`
		res, err := Filter([]byte(body), Options{}, denyRestricted)
		require.ErrorIs(t, err, ErrDenied)
		assert.Nil(t, res.Body)
		assert.Equal(t, 1, res.Denied)
	})
	t.Run("Parameters with a denied resource in a nested part", func(t *testing.T) {
		body := `{"resourceType":"Parameters","parameter":[{"name":"a","resource":{"resourceType":"Patient","id":"p1"}},` +
			`{"name":"b","part":[{"name":"c","part":[{"name":"d","resource":{"resourceType":"Observation","id":"deny-1","subject":{"reference":"Patient/px"}}}]}]}]}`
		res, err := Filter([]byte(body), Options{}, denyRestricted)
		require.ErrorIs(t, err, ErrDenied)
		assert.Nil(t, res.Body)
	})
	t.Run("Parameters with allowed nested resources lists them all", func(t *testing.T) {
		body := `{"resourceType":"Parameters","parameter":[{"name":"a","resource":{"resourceType":"Patient","id":"p1"}},` +
			`{"name":"b","part":[{"name":"d","resource":{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}}]}]}`
		res, err := Filter([]byte(body), Options{}, denyRestricted)
		require.NoError(t, err)
		assert.Equal(t, []byte(body), res.Body)
		var types []string
		for _, d := range res.Delivered {
			types = append(types, d.Type+"/"+d.ID)
		}
		assert.Equal(t, []string{"Parameters/", "Patient/p1", "Observation/o1"}, types)
	})
	t.Run("resource in an unforeseen place is decided", func(t *testing.T) {
		body := `{"resourceType":"Observation","id":"o1","extension":[{"url":"x","valueAttachment":{"data":{"inner":[{"resourceType":"Patient","id":"px"}]}}}]}`
		_, err := Filter([]byte(body), Options{}, denyRestricted)
		require.ErrorIs(t, err, ErrDenied)
	})
	t.Run("resourceType inside a string is not a resource", func(t *testing.T) {
		body := `{"resourceType":"Observation","id":"o1","text":{"div":"<div>{\"resourceType\":\"Patient\",\"id\":\"deny\"}</div>"}}`
		res, err := Filter([]byte(body), Options{}, denyRestricted)
		require.NoError(t, err)
		assert.Len(t, res.Delivered, 1)
	})
	t.Run("name written with escapes is still resourceType", func(t *testing.T) {
		body := `{"resourceType":"Observation","id":"o1","contained":[{"resource\u0054ype":"Observation","id":"deny-x","subject":{"reference":"Patient/px"}}]}`
		_, err := Filter([]byte(body), Options{}, denyRestricted)
		require.ErrorIs(t, err, ErrDenied)
	})
}

func TestFilterBundle(t *testing.T) {
	entry := func(id, extra string) string {
		patient := "p1"
		if strings.HasPrefix(id, "deny") {
			patient = "px"
		}
		return `{"fullUrl":"https://up/fhir/Observation/` + id + `","resource":{"resourceType":"Observation","id":"` + id + `","subject":{"reference":"Patient/` + patient + `"}` + extra + `},"search":{"mode":"match"}}`
	}
	t.Run("searchset loses denied entries, gains an outcome, drops total", func(t *testing.T) {
		keep := entry("o1", "")
		body := `{"resourceType":"Bundle","id":"b1","meta":{"lastUpdated":"2026-01-01T00:00:00Z"},"type":"searchset","total":3,` +
			`"link":[{"relation":"self","url":"https://up/fhir/Observation?patient=p1"}],` +
			`"entry":[` + keep + `,` + entry("deny-2", "") + `,` + entry("o3", ","+labelR) + `],"signature":{"who":{"display":"x"}}}`
		res, err := Filter([]byte(body), Options{}, denyRestricted)
		require.NoError(t, err)
		assert.True(t, res.Bundle)
		assert.Equal(t, 2, res.Denied)
		got := decoded(t, res.Body)
		assert.NotContains(t, got, "total")
		assert.Equal(t, []string{"o1", "OperationOutcome"}, entryIDs(t, got))
		outcome := got["entry"].([]any)[1].(map[string]any)
		assert.Equal(t, map[string]any{"mode": "outcome"}, outcome["search"])
		issue := outcome["resource"].(map[string]any)["issue"].([]any)[0].(map[string]any)
		assert.Equal(t, "suppressed", issue["code"])
		assert.Equal(t, "information", issue["severity"])
		assert.Contains(t, string(res.Body), keep, "kept entries keep their bytes")
		var order []string
		dec := json.NewDecoder(strings.NewReader(string(res.Body)))
		_, _ = dec.Token()
		for dec.More() {
			k, _ := dec.Token()
			order = append(order, k.(string))
			var skip json.RawMessage
			require.NoError(t, dec.Decode(&skip))
		}
		assert.Equal(t, []string{"resourceType", "id", "meta", "type", "link", "entry", "signature"}, order)
		require.Len(t, res.Delivered, 1)
		assert.Equal(t, "o1", res.Delivered[0].ID)
	})
	t.Run("nothing denied keeps total and bytes", func(t *testing.T) {
		body := []byte(`{"resourceType":"Bundle","type":"searchset","total":2,"entry":[` + entry("o1", "") + `, ` + entry("o2", "") + `]}`)
		res, err := Filter(body, Options{}, denyRestricted)
		require.NoError(t, err)
		assert.Equal(t, body, res.Body)
		assert.Zero(t, res.Denied)
		assert.Len(t, res.Delivered, 2)
	})
	t.Run("every entry denied leaves only the outcome", func(t *testing.T) {
		body := `{"resourceType":"Bundle","type":"searchset","total":1,"entry":[` + entry("deny-1", "") + `]}`
		res, err := Filter([]byte(body), Options{}, denyRestricted)
		require.NoError(t, err)
		got := decoded(t, res.Body)
		assert.Equal(t, []string{"OperationOutcome"}, entryIDs(t, got))
		assert.Empty(t, res.Delivered)
	})
	t.Run("_include entries are decided like any entry", func(t *testing.T) {
		inc := `{"fullUrl":"https://up/fhir/Patient/px","resource":{"resourceType":"Patient","id":"px"},"search":{"mode":"include"}}`
		incOK := `{"fullUrl":"https://up/fhir/Patient/p1","resource":{"resourceType":"Patient","id":"p1"},"search":{"mode":"include"}}`
		body := `{"resourceType":"Bundle","type":"searchset","entry":[` + entry("o1", "") + `,` + inc + `,` + incOK + `]}`
		res, err := Filter([]byte(body), Options{}, denyRestricted)
		require.NoError(t, err)
		assert.Equal(t, []string{"o1", "p1", "OperationOutcome"}, entryIDs(t, decoded(t, res.Body)))
		assert.Equal(t, 1, res.Denied)
	})
	t.Run("entry with a denied contained resource is dropped whole", func(t *testing.T) {
		e := entry("o2", `,"contained":[{"resourceType":"Practitioner","id":"pr",`+labelR+`}]`)
		body := `{"resourceType":"Bundle","type":"searchset","entry":[` + entry("o1", "") + `,` + e + `]}`
		res, err := Filter([]byte(body), Options{}, denyRestricted)
		require.NoError(t, err)
		assert.Equal(t, []string{"o1", "OperationOutcome"}, entryIDs(t, decoded(t, res.Body)))
	})
	t.Run("nested Bundle is decided and dropped whole", func(t *testing.T) {
		inner := `{"resourceType":"Bundle","id":"inner","type":"searchset","entry":[` + entry("o5", "") + `,` + entry("deny-6", "") + `]}`
		body := `{"resourceType":"Bundle","type":"batch-response","entry":[{"resource":` + inner + `,"response":{"status":"200 OK"}},{"response":{"status":"204 No Content"}}]}`
		var types []string
		res, err := Filter([]byte(body), Options{}, func(r Resource) (bool, error) {
			types = append(types, r.Type+"/"+r.ID)
			return denyRestricted(r)
		})
		require.NoError(t, err)
		assert.Equal(t, []string{"Bundle/inner", "Observation/o5", "Observation/deny-6"}, types, "the nested Bundle is decided; the top-level one is not")
		got := decoded(t, res.Body)
		assert.Equal(t, []string{"-", "OperationOutcome"}, entryIDs(t, got), "the entry without a resource is kept")
	})
	t.Run("batch-response entries without resource are kept, outcomes are decided", func(t *testing.T) {
		body := `{"resourceType":"Bundle","type":"batch-response","entry":[` +
			`{"response":{"status":"201 Created","location":"Observation/o9/_history/1"}},` +
			`{"response":{"status":"400 Bad Request","outcome":{"resourceType":"OperationOutcome","id":"deny-oo",` + labelR + `,"issue":[]}}},` +
			`{"response":{"status":"404 Not Found","outcome":{"resourceType":"OperationOutcome","issue":[]}}}]}`
		res, err := Filter([]byte(body), Options{}, denyRestricted)
		require.NoError(t, err)
		got := decoded(t, res.Body)
		require.Len(t, got["entry"], 3)
		assert.Equal(t, "201 Created", got["entry"].([]any)[0].(map[string]any)["response"].(map[string]any)["status"])
		assert.Equal(t, "404 Not Found", got["entry"].([]any)[1].(map[string]any)["response"].(map[string]any)["status"])
		assert.Equal(t, 1, res.Denied)
	})
	t.Run("denied resource outside the entries withholds everything", func(t *testing.T) {
		body := `{"resourceType":"Bundle","type":"collection","issues":{"resourceType":"OperationOutcome","id":"deny-x",` + labelR + `},"entry":[` + entry("o1", "") + `]}`
		res, err := Filter([]byte(body), Options{}, denyRestricted)
		require.ErrorIs(t, err, ErrDenied)
		assert.True(t, res.Bundle)
		assert.Nil(t, res.Body)
	})
	t.Run("Bundle without entries", func(t *testing.T) {
		body := []byte(`{"resourceType":"Bundle","type":"searchset","total":0}`)
		res, err := Filter(body, Options{}, denyRestricted)
		require.NoError(t, err)
		assert.Equal(t, body, res.Body)
	})
}

func TestFilterRewrite(t *testing.T) {
	rewrite := func(u string) string {
		if rest, ok := strings.CutPrefix(u, "http://up:8081/fhir"); ok {
			return "https://proxy.example/fhir" + rest
		}
		return u
	}
	body := `{"resourceType":"Bundle","type":"searchset","total":3,` +
		`"link":[{"relation":"self","url":"http://up:8081/fhir/Observation?patient=p1"},{"relation":"next","url":"http:\/\/up:8081/fhir?_getpages=x&_count=2"}],` +
		`"entry":[` +
		`{"fullUrl":"http://up:8081/fhir/Observation/o1","resource":{"resourceType":"Observation","id":"o1"}},` +
		`{"fullUrl":"urn:uuid:1","link":[{"relation":"alternate","url":"http://up:8081/fhir/Observation/o2"}],"resource":{"resourceType":"Observation","id":"o2"}},` +
		`{"fullUrl":"http://up:8081/fhir/Bundle/n","resource":{"resourceType":"Bundle","id":"n","type":"collection","link":[{"relation":"self","url":"http://up:8081/fhir/Bundle/n"}],` +
		`"entry":[{"fullUrl":"http://up:8081/fhir/Patient/p1","resource":{"resourceType":"Patient","id":"p1"}}]}}` +
		`]}`
	for _, deny := range []bool{false, true} {
		name := "nothing denied"
		if deny {
			name = "with a denied entry"
		}
		t.Run(name, func(t *testing.T) {
			b := body
			if deny {
				b = strings.Replace(body, `"entry":[`, `"entry":[{"fullUrl":"http://up:8081/fhir/Observation/deny-1","resource":{"resourceType":"Observation","id":"deny-1","subject":{"reference":"Patient/px"}}},`, 1)
			}
			res, err := Filter([]byte(b), Options{Rewrite: rewrite}, denyRestricted)
			require.NoError(t, err)
			assert.NotContains(t, string(res.Body), "up:8081", "every upstream URL is rewritten")
			got := decoded(t, res.Body)
			links := got["link"].([]any)
			assert.Equal(t, "https://proxy.example/fhir/Observation?patient=p1", links[0].(map[string]any)["url"])
			assert.Equal(t, "https://proxy.example/fhir?_getpages=x&_count=2", links[1].(map[string]any)["url"])
			entries := got["entry"].([]any)
			assert.Equal(t, "https://proxy.example/fhir/Observation/o1", entries[0].(map[string]any)["fullUrl"])
			assert.Equal(t, "urn:uuid:1", entries[1].(map[string]any)["fullUrl"])
			assert.Equal(t, "https://proxy.example/fhir/Observation/o2", entries[1].(map[string]any)["link"].([]any)[0].(map[string]any)["url"])
			nested := entries[2].(map[string]any)["resource"].(map[string]any)
			assert.Equal(t, "https://proxy.example/fhir/Bundle/n", nested["link"].([]any)[0].(map[string]any)["url"])
			assert.Equal(t, "https://proxy.example/fhir/Patient/p1", nested["entry"].([]any)[0].(map[string]any)["fullUrl"])
			if deny {
				assert.NotContains(t, got, "total")
				assert.Len(t, entries, 4)
			} else {
				assert.InDelta(t, 3, got["total"], 0)
			}
		})
	}
	t.Run("rewritten URL is escaped", func(t *testing.T) {
		b := `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"a"}]}`
		res, err := Filter([]byte(b), Options{Rewrite: func(string) string { return "x\"y\\z\u2028" }}, denyRestricted)
		require.NoError(t, err)
		assert.Equal(t, "x\"y\\z\u2028", decoded(t, res.Body)["link"].([]any)[0].(map[string]any)["url"])
	})
	t.Run("non-Bundle with a nested Bundle", func(t *testing.T) {
		b := `{"resourceType":"Parameters","parameter":[{"name":"return","resource":{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"http://up:8081/fhir/Patient/p1","resource":{"resourceType":"Patient","id":"p1"}}]}}]}`
		res, err := Filter([]byte(b), Options{Rewrite: rewrite}, denyRestricted)
		require.NoError(t, err)
		assert.Equal(t, strings.Replace(b, "http://up:8081", "https://proxy.example", 1), string(res.Body))
	})
}

// TestFilterDecidesEveryResource: alike resources are each decided, with
// their own ids, so a policy that reads the id is obeyed.
func TestFilterDecidesEveryResource(t *testing.T) {
	var entries []string
	for _, id := range []string{"o1", "o2", "o3", "o4"} {
		entries = append(entries, `{"resource":{"resourceType":"Observation","id":"`+id+`","subject":{"reference":"Patient/p1"}}}`)
	}
	entries = append(entries,
		`{"resource":{"resourceType":"Observation","id":"o5","subject":{"reference":"Patient/p2"}}}`,
		`{"resource":{"resourceType":"Observation","id":"o6","subject":{"reference":"Patient/p1"},`+labelR+`}}`,
		`{"resource":{"resourceType":"Observation","id":"o7","subject":{"reference":"Patient/p1"},`+labelR+`}}`,
		`{"resource":{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"}}}`,
		`{"resource":{"resourceType":"Observation","id":"o8","subject":{"reference":"urn:uuid:x"}}}`,
	)
	body := `{"resourceType":"Bundle","type":"searchset","entry":[` + strings.Join(entries, ",") + `]}`
	var asked []string
	res, err := Filter([]byte(body), Options{}, func(r Resource) (bool, error) {
		asked = append(asked, r.ID+"|"+r.Type+"|"+strings.Join(r.Patients, ",")+"|"+r.PatientStatus+"|"+strings.Join(r.Labels, ","))
		if r.ID == "o3" {
			return false, nil // a policy that reads the id
		}
		return denyRestricted(r)
	})
	require.NoError(t, err)
	assert.Equal(t, []string{
		"o1|Observation|p1|known|", "o2|Observation|p1|known|", "o3|Observation|p1|known|", "o4|Observation|p1|known|",
		"o5|Observation|p2|known|", "o6|Observation|p1|known|R", "o7|Observation|p1|known|R",
		"c1|Condition|p1|known|", "o8|Observation||unknown|",
	}, asked)
	assert.Equal(t, 3, res.Denied, "o3 and both R entries are withheld")
	assert.Len(t, res.Delivered, 6)
	assert.Equal(t, "o4", res.Delivered[2].ID, "Delivered carries each resource's own id")
}

func TestFilterDecideError(t *testing.T) {
	boom := errors.New("policy unavailable")
	for _, body := range []string{
		`{"resourceType":"Observation","id":"o1"}`,
		`{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Observation","id":"o1"}}]}`,
		`{"resourceType":"Bundle","type":"searchset","issues":{"resourceType":"OperationOutcome"}}`,
	} {
		res, err := Filter([]byte(body), Options{}, func(Resource) (bool, error) { return false, boom })
		require.ErrorIs(t, err, boom)
		assert.NotErrorIs(t, err, ErrDenied)
		assert.Nil(t, res.Body)
	}
	_, err := Filter([]byte(`{"resourceType":"Patient","id":"p1"}`), Options{}, nil)
	require.Error(t, err, "a nil Decide fails closed")
}

func TestFilterMalformed(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 64) + `1` + strings.Repeat(`}`, 64)
	tests := []struct{ name, body string }{
		{"empty", ``},
		{"whitespace only", " \n\t"},
		{"not JSON", `resourceType=Patient`},
		{"array", `[{"resourceType":"Patient","id":"p1"}]`},
		{"string", `"Patient"`},
		{"no resourceType", `{"id":"p1"}`},
		{"resourceType not a string", `{"resourceType":7,"contained":[{"resourceType":"Patient"}]}`},
		{"trailing data", `{"resourceType":"Patient","id":"p1"} x`},
		{"two objects", `{"resourceType":"Patient","id":"p1"}{"resourceType":"Patient","id":"p2"}`},
		{"truncated", `{"resourceType":"Patient","id":"p1"`},
		{"trailing comma", `{"resourceType":"Patient","id":"p1",}`},
		{"single quotes", `{'resourceType':'Patient'}`},
		{"comment", `{"resourceType":"Patient"/* x */}`},
		{"byte order mark", "\xef\xbb\xbf{\"resourceType\":\"Patient\"}"},
		{"invalid UTF-8", "{\"resourceType\":\"Patient\",\"name\":\"\xff\"}"},
		{"surrogate in UTF-8", "{\"resourceType\":\"Patient\",\"name\":\"\xed\xa0\x80\"}"},
		{"raw control character", "{\"resourceType\":\"Patient\",\"name\":\"a\tb\"}"},
		{"bad escape", `{"resourceType":"Patient","name":"\x41"}`},
		{"short unicode escape", `{"resourceType":"Patient","name":"\u41"}`},
		{"leading zero", `{"resourceType":"Patient","n":01}`},
		{"bare fraction", `{"resourceType":"Patient","n":1.}`},
		{"NaN", `{"resourceType":"Patient","n":NaN}`},
		{"plus sign", `{"resourceType":"Patient","n":+1}`},
		{"truncated literal", `{"resourceType":"Patient","active":tru}`},
		{"duplicate resourceType", `{"resourceType":"Patient","id":"p1","resourceType":"Bundle"}`},
		{"duplicate resourceType, escaped", `{"resourceType":"Bundle","resource\u0054ype":"Patient"}`},
		{"duplicate id", `{"resourceType":"Patient","id":"p1","id":"p2"}`},
		{"duplicate entry", `{"resourceType":"Bundle","entry":[],"entry":[{"resource":{"resourceType":"Patient","id":"p1"}}]}`},
		{"duplicate contained", `{"resourceType":"Observation","contained":[],"contained":[{"resourceType":"Patient"}]}`},
		{"duplicate meta", `{"resourceType":"Observation","meta":{},"meta":{"security":[{"code":"R"}]}}`},
		{"duplicate security", `{"resourceType":"Observation","meta":{"security":[{"code":"R"}],"security":[]}}`},
		{"duplicate subject", `{"resourceType":"Observation","subject":{"reference":"Patient/p1"},"subject":{"reference":"Patient/p2"}}`},
		{"duplicate in a large object", `{"resourceType":"Observation",` + manyMembers(40) + `,"m7":1}`},
		{"control character in a name", `{"resourceType":"Patient","id\u0000":"x"}`},
		{"entry not an array", `{"resourceType":"Bundle","entry":{"resource":{"resourceType":"Patient"}}}`},
		{"entry element not an object", `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient"}},"x"]}`},
		{"nested Bundle entry not an array", `{"resourceType":"Observation","contained":[{"resourceType":"Bundle","entry":7}]}`},
		{"too deep", `{"resourceType":"Patient","x":` + deep + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			res, err := Filter([]byte(tt.body), Options{}, func(Resource) (bool, error) { called = true; return true, nil })
			require.ErrorIs(t, err, ErrMalformed)
			assert.Nil(t, res.Body)
			assert.False(t, called, "nothing is decided in a malformed body")
			for _, v := range []string{"p1", "p2", "Patient/", "\xff"} {
				assert.NotContains(t, err.Error(), v, "errors quote no values")
			}
		})
	}
	t.Run("depth 64 is allowed", func(t *testing.T) {
		body := `{"resourceType":"Patient","x":` + strings.Repeat(`[`, 63) + strings.Repeat(`]`, 63) + `}`
		_, err := Filter([]byte(body), Options{}, denyRestricted)
		require.NoError(t, err)
		body = `{"resourceType":"Patient","x":` + strings.Repeat(`[`, 64) + strings.Repeat(`]`, 64) + `}`
		_, err = Filter([]byte(body), Options{}, denyRestricted)
		require.ErrorIs(t, err, ErrMalformed)
	})
}

func manyMembers(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"m`)
		b.WriteString(string(rune('0' + i%10)))
		b.WriteString(strings.Repeat("x", i/10))
		b.WriteString(`":1`)
	}
	return b.String()
}

func TestParseAcceptsValidJSON(t *testing.T) {
	valid := []string{
		`{"resourceType":"Patient","a":[],"b":{},"c":[1,-0,0.5,-1.25e+10,3E-2,true,false,null,"",[[]]]}`,
		`{"resourceType":"Patient","s":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00 é 😀"}`,
		"\r\n\t {\"resourceType\":\"Patient\"} \r\n",
		`{"resourceType":"Patient","a":{"b":1},"c":{"b":2}}`,
	}
	for _, body := range valid {
		require.True(t, json.Valid([]byte(body)), body)
		_, err := Filter([]byte(body), Options{}, denyRestricted)
		assert.NoError(t, err, body)
	}
}

func TestDecodeStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{`plain`, `a\"b\\c\/d`, `\b\f\n\r\t`, `\u0041\u00e9\u4e2d`, `\ud83d\ude00`, `\ud800x`, `\udc00`, `\ud800\u0041`, `\ud800\ud800\udc00`} {
		var want string
		require.NoError(t, json.Unmarshal([]byte(`"`+s+`"`), &want))
		assert.Equal(t, want, decodeString([]byte(s)), "decodeString(%q)", s)
	}
}

func TestResourceTypeSig(t *testing.T) {
	assert.Equal(t, nameSig([]byte("resourceType")), uint64(resourceTypeSig))
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s/`, "\x00\x1f\t\n", "é😀中", "\u2028\u2029", "bad\xffutf8"} {
		enc := appendString(nil, s)
		var got string
		require.NoError(t, json.Unmarshal(enc, &got), "appendString(%q) = %s", s, enc)
		assert.Equal(t, strings.ToValidUTF8(s, "\uFFFD"), got, "round trip of %q", s)
		assert.NotContains(t, string(enc), "\u2028", "U+2028 is escaped")
		_, err := parse(enc)
		assert.NoError(t, err, "our own scanner accepts %s", enc)
	}
}

func TestFilterAliasesResolveURNReferences(t *testing.T) {
	body := `{"resourceType":"Observation","subject":{"reference":"urn:uuid:9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"}}`
	var got []Resource
	collect := func(r Resource) (bool, error) { got = append(got, r); return true, nil }

	_, err := Filter([]byte(body), Options{}, collect)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, PatientsUnknown, got[0].PatientStatus, "an unmapped urn:uuid is unknown")

	got = nil
	_, err = Filter([]byte(body), Options{Aliases: map[string]string{"urn:uuid:9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d": "Patient/p2"}}, collect)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, []string{"p2"}, got[0].Patients)
	assert.Equal(t, PatientsKnown, got[0].PatientStatus)
}

func TestFilterKeepPositions(t *testing.T) {
	body := `{"resourceType":"Bundle","type":"batch-response","total":3,"entry":[` +
		`{"resource":{"resourceType":"Observation","id":"a","subject":{"reference":"Patient/p1"}},"response":{"status":"200 OK"}},` +
		`{"resource":{"resourceType":"Observation","id":"b","subject":{"reference":"Patient/p2"}},"response":{"status":"200 OK"}},` +
		`{"response":{"status":"204 No Content"}}]}`
	res, err := Filter([]byte(body), Options{KeepPositions: true}, func(r Resource) (bool, error) {
		return !slices.Contains(r.Patients, "p2"), nil
	})
	require.NoError(t, err)
	var out struct {
		Total int
		Entry []struct {
			Resource *struct{ ID string }
			Response struct{ Status string }
		}
	}
	require.NoError(t, json.Unmarshal(res.Body, &out), string(res.Body))
	require.Len(t, out.Entry, 3, "one entry per request entry, no outcome entry")
	assert.Equal(t, "a", out.Entry[0].Resource.ID)
	assert.Nil(t, out.Entry[1].Resource, "the withheld resource is gone")
	assert.Equal(t, "403 Forbidden", out.Entry[1].Response.Status)
	assert.Equal(t, "204 No Content", out.Entry[2].Response.Status)
	assert.Equal(t, 3, out.Total)
	assert.NotContains(t, string(res.Body), "p2")
	assert.Equal(t, 1, res.Denied)
}

func TestCompartmentPaths(t *testing.T) {
	assert.Equal(t, []string{"subject", "participant.member"}, CompartmentPaths("CareTeam"))
	assert.Nil(t, CompartmentPaths("Practitioner"))
}

// TestTopAndInHistory: which resources are what a document is about (Top)
// and which are versions in a history Bundle (InHistory), at any depth,
// and which are neither: contained resources, an entry's outcome,
// resources nested in other resources.
func TestTopAndInHistory(t *testing.T) {
	const contained = `"contained":[{"resourceType":"Medication","id":"med"}]`
	tests := []struct {
		name string
		body string
		want []string // "Type/id top history" per resource decided, in order
	}{
		{"a read", `{"resourceType":"Observation","id":"o1",` + contained + `}`,
			[]string{"Observation/o1 top -", "Medication/med - -"}},
		{"a searchset", `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Observation","id":"o1",` + contained + `}}]}`,
			[]string{"Observation/o1 top -", "Medication/med - -"}},
		{"a history", `{"resourceType":"Bundle","type":"history","entry":[{"resource":{"resourceType":"Observation","id":"o1",` + contained + `}},` +
			`{"request":{"method":"DELETE"},"response":{"status":"204","outcome":{"resourceType":"OperationOutcome","id":"x"}}}]}`,
			[]string{"Observation/o1 top history", "Medication/med - -", "OperationOutcome/x - -"}},
		{"an escaped history type", `{"resourceType":"Bundle","type":"\u0068istory","entry":[{"resource":{"resourceType":"Observation","id":"o1"}}]}`,
			[]string{"Observation/o1 top history"}},
		{"a history in a batch-response", `{"resourceType":"Bundle","type":"batch-response","entry":[{"resource":{"resourceType":"Bundle","type":"history",` +
			`"entry":[{"resource":{"resourceType":"Observation","id":"o1"}}]}}]}`,
			[]string{"Bundle/ top -", "Observation/o1 - history"}},
		{"a resource inside a resource is neither", `{"resourceType":"Parameters","parameter":[{"name":"a","resource":{"resourceType":"Observation","id":"o1"}}]}`,
			[]string{"Parameters/ top -", "Observation/o1 - -"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			_, err := Filter([]byte(tc.body), Options{}, func(r Resource) (bool, error) {
				top, hist := "-", "-"
				if r.Top {
					top = "top"
				}
				if r.InHistory {
					hist = "history"
				}
				got = append(got, r.Type+"/"+r.ID+" "+top+" "+hist)
				return true, nil
			})
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
