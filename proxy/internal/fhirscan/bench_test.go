package fhirscan

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// benchObservation is a realistic laboratory Observation of about 1.1 KB;
// every fourth one carries a security label.
func benchObservation(i int) string {
	security := ""
	if i%4 == 0 {
		security = `,"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"N","display":"normal"}]`
	}
	return fmt.Sprintf(`{"resourceType":"Observation","id":"obs-%06d","meta":{"lastUpdated":"2026-03-14T09:26:53.589+00:00","source":"#lab-interface-7"%s},`+
		`"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory","display":"Laboratory"}]}],`+
		`"code":{"coding":[{"system":"http://loinc.org","code":"2345-7","display":"Glucose [Mass/volume] in Serum or Plasma"}],"text":"Glucose"},`+
		`"subject":{"reference":"Patient/pat-%04d"},"encounter":{"reference":"Encounter/enc-%04d"},`+
		`"effectiveDateTime":"2026-03-%02dT08:15:00+01:00",`+
		`"performer":[{"reference":"Practitioner/prac-17","display":"Dr. Alan Smith"},{"reference":"Organization/org-lab-1","display":"Central Laboratory"}],`+
		`"valueQuantity":{"value":%d.%d,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"},`+
		`"referenceRange":[{"low":{"value":3.9,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"},"high":{"value":5.5,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}}]}`,
		i, security, 42+i%3, 7700+i, 1+i%28, 4+i%3, i%10)
}

func benchBundle(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Bundle","id":"5f2c1d8e-3b7a-4c1e-9d2f-8a6b4e3c2d1f","meta":{"lastUpdated":"2026-03-14T09:30:00.000+00:00"},"type":"searchset","total":100,` +
		`"link":[{"relation":"self","url":"http://up:8081/fhir/Observation?code=2345-7&_count=100"},{"relation":"next","url":"http://up:8081/fhir?_getpages=5f2c1d8e&_getpagesoffset=100&_count=100"}],"entry":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"fullUrl":"http://up:8081/fhir/Observation/obs-%06d","resource":%s,"search":{"mode":"match"}}`, i, benchObservation(i))
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func benchRewrite(u string) string {
	if rest, ok := strings.CutPrefix(u, "http://up:8081/fhir"); ok {
		return "https://emr.example.org/fhir" + rest
	}
	return u
}

// BenchmarkFilter measures the scanner's own cost with a trivial decide.
func BenchmarkFilter(b *testing.B) {
	allow := func(Resource) (bool, error) { return true, nil }
	opts := Options{Bases: []string{"http://up:8081/fhir"}, Rewrite: benchRewrite}
	bundle := benchBundle(100)
	obs := benchObservation(7)
	single := []byte(obs[:len(obs)-1] + `,"issued":"2026-03-08T09:26:53.589+01:00","specimen":{"reference":"Specimen/spec-991","display":"Venous blood"},` +
		`"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"N","display":"Normal"}]}],` +
		`"note":[{"text":"Fasting sample, collected before breakfast; repeat in 3 months."}]}`)
	cases := []struct {
		name   string
		body   []byte
		decide Decide
	}{
		{"bundle-100", bundle, allow},
		{"bundle-100-some-denied", bundle, func(r Resource) (bool, error) { return r.Patients[0] != "pat-0043", nil }},
		{"single", single, allow},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if _, err := Filter(c.body, opts, c.decide); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Filter(c.body, opts, c.decide); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(c.body)), "body-bytes")
		})
	}
	// For scale on a shared machine: the cost of merely validating the same
	// Bundle with the standard library.
	b.Run("baseline-json-valid-bundle-100", func(b *testing.B) {
		b.SetBytes(int64(len(bundle)))
		for b.Loop() {
			if !json.Valid(bundle) {
				b.Fatal("invalid")
			}
		}
	})
}
