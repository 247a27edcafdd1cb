package authn

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPatientLink(t *testing.T) {
	tests := []struct {
		fhirUser string
		want     string // "" = no link
	}{
		{"Patient/123", "Patient/123"},
		{"Patient/a-b.c", "Patient/a-b.c"},
		{"https://emr.example.org/fhir/Patient/123", "Patient/123"},
		{"http://127.0.0.1:8081/Patient/123", "Patient/123"},
		{"Practitioner/9", ""},
		{"RelatedPerson/9", ""},
		{"Patient/", ""},
		{"Patient/1/_history/2", ""},
		{"Patient/" + strings.Repeat("a", 65), ""},
		{"Patient/a_b", ""},
		{"patient/123", ""},
		{"https://emr.example.org/fhir/Patient/123?x=1", ""},
		{"https://emr.example.org/fhir/Patient/123#x", ""},
		{"https://emr.example.org/fhir/Patient/1%2F2", ""},
		{"ftp://emr.example.org/Patient/123", ""},
		{"https:///Patient/123", ""},
		{"https://emr.example.org/fhir/Practitioner/Patient/123", "Patient/123"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.fhirUser, func(t *testing.T) {
			got, ok := patientLink(tt.fhirUser)
			assert.Equal(t, tt.want, got, "patientLink(%q)", tt.fhirUser)
			assert.Equal(t, tt.want != "", ok)
		})
	}
}

func TestClaimsTime(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    time.Time
		present bool
		wantErr bool
	}{
		{name: "integer", json: `{"exp":1764061200}`, want: time.Unix(1764061200, 0), present: true},
		{name: "fraction", json: `{"exp":1764061200.5}`, want: time.Unix(1764061200, 5e8), present: true},
		{name: "absent", json: `{}`},
		{name: "null", json: `{"exp":null}`},
		{name: "string", json: `{"exp":"1764061200"}`, wantErr: true},
		{name: "negative", json: `{"exp":-1}`, wantErr: true},
		{name: "beyond year 9999", json: `{"exp":1e300}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseClaims([]byte(tt.json))
			require.NoError(t, err)
			got, present, err := c.time("exp")
			if tt.wantErr {
				require.ErrorIs(t, err, errClaims)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.present, present)
			assert.True(t, tt.want.Equal(got), "time(exp) = %v, want %v", got, tt.want)
		})
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   string
		err    error
	}{
		{name: "canonical", values: []string{"Bearer abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "upper-case scheme", values: []string{"BEARER abc"}, want: "abc"},
		{name: "padding", values: []string{"Bearer abc=="}, want: "abc=="},
		{name: "none", err: ErrNoCredentials},
		{name: "two", values: []string{"Bearer a", "Bearer a"}, err: errMultipleHeaders},
		{name: "only padding", values: []string{"Bearer =="}, err: errMalformed},
		{name: "padding inside", values: []string{"Bearer a=b"}, err: errMalformed},
		{name: "tab", values: []string{"Bearer\tabc"}, err: errNotBearer},
		{name: "comma list", values: []string{"Bearer a, Basic b"}, err: errMalformed},
		{name: "JSON serialization", values: []string{`Bearer {"payload":"x"}`}, err: errMalformed},
		{name: "non-ASCII", values: []string{"Bearer abc\u00e9"}, err: errMalformed},
		{name: "at limit", values: []string{"Bearer " + strings.Repeat("a", MaxTokenBytes)}, want: strings.Repeat("a", MaxTokenBytes)},
		{name: "over limit", values: []string{"Bearer " + strings.Repeat("a", MaxTokenBytes+1)}, err: errTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.values {
				h.Add("Authorization", v)
			}
			got, err := bearerToken(h)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err, "bearerToken(%q)", tt.values)
				assert.Empty(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// FuzzBearerToken checks the header parser: it never panics, every error
// is one of the two sentinels and carries none of the input, and a token
// it returns is the header minus the scheme, in the token68 alphabet.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc.def.ghi", "bearer a==", "Basic dXNlcg==", "Bearer ", "Bearer  x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{"Authorization": {v}}
		tok, err := bearerToken(h)
		if err != nil {
			if !errorIsOneOf(err, ErrInvalidCredentials, ErrNoCredentials) {
				t.Fatalf("bearerToken(%q) = %v: not a sentinel", v, err)
			}
			if len(v) >= 7+32 && strings.Contains(err.Error(), v[7:]) {
				t.Fatalf("bearerToken(%q) error echoes the input: %v", v, err)
			}
			return
		}
		if !strings.EqualFold(v[:7], "Bearer ") || v[7:] != tok {
			t.Fatalf("bearerToken(%q) = %q, not the header minus its scheme", v, tok)
		}
		if len(tok) == 0 || len(tok) > MaxTokenBytes || !isToken68(tok) {
			t.Fatalf("bearerToken(%q) = %q: not a bounded token68", v, tok)
		}
	})
}

func errorIsOneOf(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
