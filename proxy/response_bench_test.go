package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/policy"
)

// benchObservation is a laboratory Observation of about 1.1 KB of patient
// p1; every fourth one is labelled restricted (R).
func benchObservation(i int) string {
	security := ""
	if i%4 == 0 {
		security = `,"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R","display":"restricted"}]`
	}
	return fmt.Sprintf(`{"resourceType":"Observation","id":"obs-p1-%d","meta":{"versionId":"1","lastUpdated":"2026-03-14T09:26:53.589+00:00","source":"#lab-interface-7"%s},`+
		`"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory","display":"Laboratory"}]}],`+
		`"code":{"coding":[{"system":"http://loinc.org","code":"2345-7","display":"Glucose [Mass/volume] in Serum or Plasma"}],"text":"Glucose"},`+
		`"subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/enc-p1-%d"},`+
		`"effectiveDateTime":"2026-03-%02dT08:15:00+01:00",`+
		`"performer":[{"reference":"Practitioner/pr1","display":"Dr. Alan Smith"},{"reference":"Organization/org-lab-1","display":"Central Laboratory"}],`+
		`"valueQuantity":{"value":%d.%d,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"},`+
		`"referenceRange":[{"low":{"value":3.9,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"},"high":{"value":5.5,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}}]}`,
		i, security, i, 1+i%28, 4+i%3, i%10)
}

func benchSearchset(upstream string, n int) []byte {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Bundle","type":"searchset","total":` + fmt.Sprint(n) +
		`,"link":[{"relation":"self","url":"` + upstream + `/fhir/Observation?patient=p1&code=2345-7"},` +
		`{"relation":"next","url":"` + upstream + `/fhir/Observation?patient=p1&code=2345-7&_offset=100"}],"entry":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"fullUrl":"%s/fhir/Observation/obs-p1-%d","resource":%s,"search":{"mode":"match"}}`, upstream, i, benchObservation(i))
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkResponseCheck measures what the response phase adds to a
// response with the default policy (configs/policy): scanning the body and
// deciding every resource of a 100-entry Observation searchset of about
// 112 KB (those the policy cannot tell apart evaluated once: policy.Memo),
// and of one 1.4 KB Observation.
// The caller is physician pr1, on p1's care team. Targets (issue): the
// Bundle ≤ 3 ms median, the single resource ≤ 150 µs.
func BenchmarkResponseCheck(b *testing.B) {
	ctx := context.Background()
	engine, err := policy.New(ctx, policy.Config{Dir: filepath.Join("..", "configs", "policy")}, nil)
	require.NoError(b, err)
	cfg := defaults()
	cfg.PublicURL, cfg.Upstream.URL = "https://emr.example.org", "http://127.0.0.1:8081"
	cfg.Audit.Dir, cfg.Admin.Listen = b.TempDir(), ""
	cfg.Audit.SigningKeyFile = "unused.key" // memAudit: never read
	cfg.OIDC.Issuer, cfg.OIDC.ClientID = "https://idp.example.org", "chartguard"
	require.NoError(b, cfg.validate())
	p, err := assemble(ctx, &cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), authFunc{}, engine, &memAudit{})
	require.NoError(b, err)
	b.Cleanup(func() { _ = p.Close() })

	bundle := benchSearchset(cfg.Upstream.URL, 100)
	obs := benchObservation(7)
	single := []byte(obs[:len(obs)-1] + `,"issued":"2026-03-08T09:26:53.589+01:00","specimen":{"reference":"Specimen/spec-991","display":"Venous blood"},` +
		`"interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"N","display":"Normal"}]}],` +
		`"note":[{"text":"Fasting sample, collected before breakfast; repeat in 3 months."}]}`)
	principal := &chartguard.Principal{
		Identity: chartguard.Identity{Issuer: "https://idp.example.org", Subject: "dr-pr1", Roles: []string{"physician"},
			FHIRUser: "Practitioner/pr1"},
		Token: chartguard.Token{Kind: chartguard.TokenBearer, ClientID: "app", Scopes: []string{"openid", "user/*.rs"}},
	}
	cases := []struct {
		name string
		body []byte
		res  chartguard.Resource
	}{
		{fmt.Sprintf("searchset-100-entries-%dKB", len(bundle)>>10), bundle, chartguard.Resource{Kind: chartguard.KindFHIR,
			Type: "Observation", Patients: []string{"p1"}, PatientStatus: chartguard.PatientsKnown, Action: "search", Interaction: iSearchType}},
		{fmt.Sprintf("single-%dB", len(single)), single, chartguard.Resource{Kind: chartguard.KindFHIR,
			Type: "Observation", ID: "obs-p1-7", Patients: []string{}, PatientStatus: chartguard.PatientsUnknown, Action: "read", Interaction: iRead}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.body)))
			for b.Loop() {
				res := tc.res
				x := &exchange{start: time.Now(), requestID: "bench", principal: principal, resource: &res,
					target: target{Path: "/fhir/Observation"}}
				resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/fhir+json"}},
					Body: io.NopCloser(bytes.NewReader(tc.body))}
				if pr := p.checkResponse(ctx, resp, x); pr != nil {
					b.Fatalf("refused: %d %s", pr.status, pr.message)
				}
				if len(x.exposed) == 0 {
					b.Fatal("nothing delivered")
				}
			}
		})
	}
}
