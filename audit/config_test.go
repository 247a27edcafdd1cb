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
}

func TestSetDefaultsThenYAML(t *testing.T) {
	tests := []struct {
		name                string
		yaml                string
		durable, failClosed bool
		maxPatients         int
	}{
		{"absent keys keep safe defaults", "dir: /a\n", true, true, 1000},
		{"explicit false wins", "dir: /a\ndurable: false\nfail_closed: false\n", false, false, 1000},
		{"explicit numbers win", "dir: /a\nmax_patients_per_event: 5\n", true, true, 5},
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Dir: "/var/lib/chartguard/audit"}
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
