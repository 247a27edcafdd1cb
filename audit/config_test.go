package audit

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestSetDefaultsIsSafe(t *testing.T) {
	var c Config
	c.SetDefaults()
	assert.True(t, c.Durable, "durable")
	assert.True(t, c.FailClosed, "fail_closed")
	assert.Equal(t, 1000, c.MaxPatientsPerEvent)
	assert.Equal(t, int64(256<<20), c.Segment.MaxBytes)
	assert.Equal(t, 10000, c.QueueSize)
	assert.Equal(t, DefaultCommitDelay, c.CommitDelay)
	assert.Equal(t, "10y", c.Retention)
	assert.Equal(t, 24*time.Hour, c.Segment.MaxAge)
	assert.Equal(t, int64(5<<30), c.MinFree)
	assert.Equal(t, 1000, c.CheckpointEvery)
	assert.Equal(t, 10*time.Second, c.CheckpointInterval)
	assert.Empty(t, c.SigningKeyFile)
	assert.ErrorContains(t, c.Validate(), "audit.signing_key_file: required", "no silent unsigned log")
}

func TestSetDefaultsThenYAML(t *testing.T) {
	tests := []struct {
		name                string
		yaml                string
		durable, failClosed bool
		maxPatients         int
	}{
		{"absent keys keep safe defaults", "dir: /a\nsigning_key_file: /k\n", true, true, 1000},
		{"explicit false wins", "dir: /a\nsigning_key_file: /k\ndurable: false\nfail_closed: false\n", false, false, 1000},
		{"explicit numbers win", "dir: /a\nsigning_key_file: /k\nmax_patients_per_event: 5\n", true, true, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			c.SetDefaults()
			require.NoError(t, yaml.Unmarshal([]byte(tt.yaml), &c))
			assert.Equal(t, tt.durable, c.Durable)
			assert.Equal(t, tt.failClosed, c.FailClosed)
			assert.Equal(t, tt.maxPatients, c.MaxPatientsPerEvent)
			assert.NoError(t, c.Validate())
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want []string // substrings of the error; nil = valid
	}{
		{"valid", func(*Config) {}, nil},
		{"stdout json sink", func(c *Config) { c.Sinks = []SinkConfig{{Type: "stdout", Format: "json"}} }, nil},
		{"stdout sink without format", func(c *Config) { c.Sinks = []SinkConfig{{Type: "stdout"}} }, nil},
		{"dir required", func(c *Config) { c.Dir = "" }, []string{"audit.dir: required"}},
		{"negative patients", func(c *Config) { c.MaxPatientsPerEvent = -1 }, []string{"audit.max_patients_per_event"}},
		{"negative segment", func(c *Config) { c.Segment.MaxBytes = -1 }, []string{"audit.segment.max_bytes"}},
		{"commit delay disabled", func(c *Config) { c.CommitDelay = 0 }, nil},
		{"negative commit delay", func(c *Config) { c.CommitDelay = -time.Millisecond }, []string{"commit delay", "negative"}},
		{"syslog not built", func(c *Config) { c.Sinks = []SinkConfig{{Type: "syslog"}} },
			[]string{"audit.sinks[0].type", "not supported yet"}},
		{"fhir format not built", func(c *Config) { c.Sinks = []SinkConfig{{Type: "stdout", Format: "fhir"}} },
			[]string{"audit.sinks[0].format", "not supported yet"}},
		{"unknown sink", func(c *Config) { c.Sinks = []SinkConfig{{Type: "stdout"}, {Type: "kafka"}} },
			[]string{"audit.sinks[1].type", "unknown"}},
		{"all problems at once", func(c *Config) { c.Dir = ""; c.MaxPatientsPerEvent = -3 },
			[]string{"audit.dir", "audit.max_patients_per_event"}},
		{"key required", func(c *Config) { c.SigningKeyFile = "" }, []string{"audit.signing_key_file: required", "audit keygen"}},
		{"ephemeral key allowed", func(c *Config) { c.SigningKeyFile = ""; c.EphemeralKey = true }, nil},
		{"negative checkpoint_every", func(c *Config) { c.CheckpointEvery = -1 }, []string{"audit.checkpoint_every"}},
		{"negative checkpoint_interval", func(c *Config) { c.CheckpointInterval = -time.Second }, []string{"audit.checkpoint_interval"}},
		{"bad retention", func(c *Config) { c.Retention = "ten years" }, []string{"audit.retention", "10y"}},
		{"retention in days", func(c *Config) { c.Retention = "90d" }, nil},
		{"keep forever", func(c *Config) { c.Retention = "0" }, nil},
		{"negative max_age", func(c *Config) { c.Segment.MaxAge = -time.Hour }, []string{"audit.segment.max_age"}},
		{"negative min_free", func(c *Config) { c.MinFree = -1 }, []string{"audit.min_free"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Dir: "/var/lib/chartguard/audit", SigningKeyFile: "/etc/chartguard/audit.key"}
			c.SetDefaults()
			tt.mod(&c)
			err := c.Validate()
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestParseRetention(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, true}, {"0", 0, true}, {"10y", 10 * 365 * 24 * time.Hour, true},
		{"90d", 90 * 24 * time.Hour, true}, {"720h", 720 * time.Hour, true}, {"1h30m", 90 * time.Minute, true},
		{"0y", 0, false}, {"-1d", 0, false}, {"y", 0, false}, {"1.5y", 0, false}, {"99999y", 0, false}, {"-5h", 0, false}, {"soon", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseRetention(tt.in)
		if !tt.ok {
			assert.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
}
