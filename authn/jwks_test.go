package authn

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBearerLazyDiscovery(t *testing.T) {
	t.Run("IdP down at construction, then up", func(t *testing.T) {
		idp := newTestIdP(t)
		idp.down.Store(true)
		f := newFixture(t, idp, nil)
		assert.Zero(t, idp.discoveryHits.Load(), "NewBearer did I/O")
		tok := idp.token(t, nil)

		_, err := f.auth(t, "Bearer "+tok)
		require.ErrorIs(t, err, ErrUnavailable)
		assert.NotErrorIs(t, err, ErrInvalidCredentials)
		assert.Equal(t, 1.0, f.counter(t, "chartguard_authn_total", "unavailable"))
		require.Error(t, f.b.Ready(context.Background()))

		idp.down.Store(false)
		_, err = f.auth(t, "Bearer "+tok)
		require.ErrorIs(t, err, ErrUnavailable, "retry is throttled")
		assert.Equal(t, int64(1), idp.discoveryHits.Load())

		f.clock.Advance(minRefreshInterval)
		p, err := f.auth(t, "Bearer "+tok)
		require.NoError(t, err)
		assert.Equal(t, testSubject, p.Identity.Subject)
		assert.Equal(t, int64(2), idp.discoveryHits.Load())
		require.NoError(t, f.b.Ready(context.Background()))
		assert.Equal(t, 1.0, f.counter(t, "chartguard_authn_jwks_fetch_total", "ok"))
	})

	t.Run("discovery result is cached", func(t *testing.T) {
		idp := newTestIdP(t)
		f := newFixture(t, idp, nil)
		for i := range 3 {
			_, err := f.auth(t, "Bearer "+idp.token(t, func(c jwt.MapClaims) { c["jti"] = i }))
			require.NoError(t, err)
		}
		assert.Equal(t, int64(1), idp.discoveryHits.Load())
		assert.Equal(t, int64(1), idp.jwksHits.Load())
	})

	t.Run("jwks_url override skips discovery", func(t *testing.T) {
		idp := newTestIdP(t)
		idp.discoveryDown.Store(true)
		f := newFixture(t, idp, func(c *Config) { c.JWKSURL = idp.srv.URL + "/jwks" })
		_, err := f.auth(t, "Bearer "+idp.token(t, nil))
		require.NoError(t, err)
		assert.Zero(t, idp.discoveryHits.Load())
		assert.Equal(t, int64(1), idp.jwksHits.Load())
	})

	t.Run("discovery naming another issuer is refused", func(t *testing.T) {
		idp := newTestIdP(t)
		other := "https://evil.example"
		idp.discoveryIssuer.Store(&other)
		f := newFixture(t, idp, nil)
		_, err := f.auth(t, "Bearer "+idp.token(t, nil))
		require.ErrorIs(t, err, ErrUnavailable)
		assert.Zero(t, idp.jwksHits.Load())
	})

	t.Run("concurrent first requests share one fetch", func(t *testing.T) {
		idp := newTestIdP(t)
		f := newFixture(t, idp, nil)
		tok := idp.token(t, nil)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				_, err := f.auth(t, "Bearer "+tok)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			assert.NoError(t, err)
		}
		assert.Equal(t, int64(1), idp.discoveryHits.Load())
		assert.Equal(t, int64(1), idp.jwksHits.Load())
	})

	t.Run("a waiting request honours its context", func(t *testing.T) {
		idp := newTestIdP(t)
		idp.block = make(chan struct{})
		defer close(idp.block)
		f := newFixture(t, idp, nil)
		ctx, cancel := context.WithCancel(context.Background())
		r := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx)
		r.Header.Set("Authorization", "Bearer "+idp.token(t, nil))

		done := make(chan error, 1)
		go func() {
			_, err := f.b.Authenticate(ctx, r)
			done <- err
		}()
		require.Eventually(t, func() bool { return idp.jwksHits.Load() == 1 }, 5*time.Second, time.Millisecond)
		cancel()
		select {
		case err := <-done:
			require.ErrorIs(t, err, ErrUnavailable)
			assert.ErrorIs(t, err, context.Canceled)
		case <-time.After(5 * time.Second):
			t.Fatal("Authenticate did not return after its context was cancelled")
		}
	})
}

func TestBearerKeyRotation(t *testing.T) {
	idp := newTestIdP(t)
	f := newFixture(t, idp, nil)
	_, err := f.auth(t, "Bearer "+idp.token(t, nil))
	require.NoError(t, err)
	require.Equal(t, int64(1), idp.jwksHits.Load())

	idp.rotated.Store(true)
	rotatedTok := sign(t, jwt.SigningMethodRS256, idp.rotate, "rsa2", idp.claims(), nil)
	f.clock.Advance(minRefreshInterval)
	_, err = f.auth(t, "Bearer "+rotatedTok)
	require.NoError(t, err, "a new kid triggers a refetch")
	assert.Equal(t, int64(2), idp.jwksHits.Load())

	// Unknown kids right after a fetch do not cause more fetches.
	for i := range 5 {
		c := idp.claims()
		c["jti"] = i
		tok := sign(t, jwt.SigningMethodRS256, idp.rogue, "rogue", c, nil)
		_, err = f.auth(t, "Bearer "+tok)
		require.ErrorIs(t, err, errUnknownKey)
	}
	assert.Equal(t, int64(2), idp.jwksHits.Load(), "refetch not throttled")

	// Keys are refreshed once they are old, so withdrawn keys stop working.
	idp.rotated.Store(false)
	f.clock.Advance(maxKeyAge)
	c := idp.claims()
	c["exp"] = t0.Add(2 * time.Hour).Unix()
	withdrawn := sign(t, jwt.SigningMethodRS256, idp.rotate, "rsa2", c, nil)
	_, err = f.auth(t, "Bearer "+withdrawn)
	require.ErrorIs(t, err, errUnknownKey, "withdrawn key still trusted")
	assert.Equal(t, int64(3), idp.jwksHits.Load())
}

func TestBearerIdPDocuments(t *testing.T) {
	tests := []struct {
		name string
		jwks string
	}{
		{"not JSON", "<html>"},
		{"no usable keys", `{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`},
		{"oversized", `{"keys":[],"pad":"` + strings.Repeat("x", maxDocumentBytes) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idp := newTestIdP(t)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte(tt.jwks))
			}))
			defer srv.Close()
			f := newFixture(t, idp, func(c *Config) { c.JWKSURL = srv.URL })
			_, err := f.auth(t, "Bearer "+idp.token(t, nil))
			require.ErrorIs(t, err, ErrUnavailable)
			require.Error(t, f.b.Ready(context.Background()))
		})
	}
}
