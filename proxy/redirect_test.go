package proxy

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSafeReturnPath(t *testing.T) {
	lim := defaults().Limits
	tests := []struct {
		rd, want string
		ok       bool
	}{
		{"/", "/", true},
		{"/chart/p1/notes", "/chart/p1/notes", true},
		{"/fhir/Patient?name=Smith&_count=10", "/fhir/Patient?name=Smith&_count=10", true},
		{"/a//b", "/a/b", true},
		{"", "", false},
		{"chart", "", false},
		{"//evil.example.com", "", false},
		{"///evil.example.com", "", false},
		{"/\\evil.example.com", "", false},
		{"\\\\evil.example.com", "", false},
		{"/%5Cevil.example.com", "", false},
		{"/%2F/evil.example.com", "", false},
		{"/%2f%2fevil.example.com", "", false},
		{"/%09/evil.example.com", "", false},
		{"/\t/evil.example.com", "", false},
		{"/\n/evil.example.com", "", false},
		{"/ /evil.example.com", "", false},
		{"/%0a/evil", "", false},
		{"https:evil.example.com", "", false},
		{"https://evil.example.com", "", false},
		{"javascript:alert(1)", "", false},
		{"/..//evil.example.com", "", false},
		{"/a/../../evil", "", false},
		{"/%2e%2e/evil", "", false},
		{"/%252F%252Fevil", "", false},
		{"/x#//evil", "", false},
		{"/.chartguard/logout", "", false},
		{"/.chartguard/login?rd=/x", "", false},
		{"/a;b=//evil", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.rd, func(t *testing.T) {
			got, ok := safeReturnPath(tt.rd, lim)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

// FuzzSafeReturnPath: whatever rd is, an accepted return path is a path on
// this host when a browser resolves it against ChartGuard's URL.
func FuzzSafeReturnPath(f *testing.F) {
	for _, s := range []string{"/", "/a/b?c=d", "//evil", "/\\evil", "/%09/evil", "https:evil", "/%2F%2Fevil", "/.chartguard/x"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://emr.example.org/start")
	lim := defaults().Limits
	f.Fuzz(func(t *testing.T, rd string) {
		got, ok := safeReturnPath(rd, lim)
		if !ok {
			return
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("accepted %q -> %q does not parse: %v", rd, got, err)
		}
		res := base.ResolveReference(u)
		if res.Host != base.Host || res.Scheme != base.Scheme || u.Host != "" || u.Scheme != "" {
			t.Fatalf("accepted %q -> %q leaves the host: %s", rd, got, res)
		}
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\t\r\n ") {
			t.Fatalf("accepted %q -> %q", rd, got)
		}
	})
}
