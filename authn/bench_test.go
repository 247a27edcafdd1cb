package authn

import (
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// benchRequest returns a fixture and a request carrying a valid token.
func benchRequest(b *testing.B) (*fixture, *http.Request, tokenKey) {
	idp := newTestIdP(b)
	f := newFixture(b, idp, nil)
	tok := idp.token(b, nil)
	r := httptest.NewRequest(http.MethodGet, "/fhir/Patient/1", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	_, err := f.b.Authenticate(r.Context(), r) // loads keys, fills the cache
	require.NoError(b, err)
	return f, r, tokenKey(sha256.Sum256([]byte(tok)))
}

// BenchmarkAuthenticateCached is the hot path: a repeated token costs a
// hash, a map lookup and a copy of the principal.
func BenchmarkAuthenticateCached(b *testing.B) {
	f, r, _ := benchRequest(b)
	ctx := r.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.b.Authenticate(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateUncached is a cache miss: full parse, RS256
// signature check and claim mapping (keys already loaded).
func BenchmarkAuthenticateUncached(b *testing.B) {
	f, r, key := benchRequest(b)
	ctx := r.Context()
	b.ReportAllocs()
	for b.Loop() {
		f.b.cache.remove(key)
		if _, err := f.b.Authenticate(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}
