package proxy

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/audit"
)

func TestAuditConfigKeys(t *testing.T) {
	noKey := strings.Replace(minimalYAML, ", signing_key_file: /etc/chartguard/audit.key", "", 1)
	t.Run("defaults", func(t *testing.T) {
		cfg, err := ParseConfig([]byte(minimalYAML+"node_id: proxy-7\n"), noEnv)
		require.NoError(t, err)
		a := cfg.Audit.Config
		assert.Equal(t, "emr.example.org/audit/proxy-7", a.Origin, "<public_url host>/audit/<node_id>")
		assert.Equal(t, 1000, a.CheckpointEvery)
		assert.Equal(t, 10*time.Second, a.CheckpointInterval)
		assert.Equal(t, "10y", a.Retention)
		assert.Equal(t, 24*time.Hour, a.Segment.MaxAge)
		assert.Equal(t, int64(5<<30), a.MinFree)
		assert.False(t, a.EphemeralKey)
	})
	t.Run("keys set", func(t *testing.T) {
		cfg, err := ParseConfig([]byte(strings.Replace(minimalYAML, "signing_key_file: /etc/chartguard/audit.key",
			"signing_key_file: /k, checkpoint_every: 50, checkpoint_interval: 2s, retention: 90d, min_free: 1GiB, segment: {max_age: 1h}", 1)), noEnv)
		require.NoError(t, err)
		a := cfg.Audit.Config
		assert.Equal(t, 50, a.CheckpointEvery)
		assert.Equal(t, 2*time.Second, a.CheckpointInterval)
		assert.Equal(t, "90d", a.Retention)
		assert.Equal(t, int64(1<<30), a.MinFree)
		assert.Equal(t, time.Hour, a.Segment.MaxAge)
	})
	t.Run("key required", func(t *testing.T) {
		_, err := ParseConfig([]byte(noKey), noEnv)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "audit.signing_key_file: required")
		assert.Contains(t, err.Error(), "chartguard audit keygen")
	})
	t.Run("throwaway key only for loopback demos", func(t *testing.T) {
		cfg, err := ParseConfig([]byte(noKey+"listen: \"127.0.0.1:8443\"\nsession: {insecure_dev: true}\n"), noEnv)
		require.NoError(t, err)
		assert.True(t, cfg.Audit.EphemeralKey)
	})
	t.Run("bad retention", func(t *testing.T) {
		_, err := ParseConfig([]byte(strings.Replace(minimalYAML, "signing_key_file: /etc/chartguard/audit.key",
			"signing_key_file: /k, retention: forever", 1)), noEnv)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "audit.retention")
	})
}

func TestReadyzFailsUnderAuditMinFree(t *testing.T) {
	dir := t.TempDir()
	skey, _, err := audit.GenerateKey("emr.example.org/audit/n")
	require.NoError(t, err)
	keyFile := filepath.Join(dir, "audit.key")
	require.NoError(t, os.WriteFile(keyFile, []byte(skey+"\n"), 0o600))
	for _, tt := range []struct {
		minFree int64
		code    int
		body    string
	}{
		{1 << 62, 503, "not ready: audit disk space"},
		{1 << 20, 200, "ready"},
	} {
		h := newHarness(t, nil, nil, nil)
		var cfg audit.Config
		cfg.SetDefaults()
		cfg.Dir, cfg.SigningKeyFile, cfg.MinFree = filepath.Join(t.TempDir(), "audit"), keyFile, tt.minFree
		l, err := audit.New(cfg, nil, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		h.proxy.audit = l
		rec := httptest.NewRecorder()
		h.proxy.readyz(rec, httptest.NewRequest("GET", "/readyz", nil))
		assert.Equal(t, tt.code, rec.Code)
		assert.Contains(t, rec.Body.String(), tt.body)
	}
}
