package session

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestSetDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	assert.Equal(t, "memory", c.Store)
	assert.Equal(t, 15*time.Minute, c.IdleTimeout)
	assert.Equal(t, 12*time.Hour, c.AbsoluteTimeout)
	assert.Equal(t, 5*time.Second, c.ActivityFlush)
	require.NoError(t, c.Validate())
}

func TestConfigYAML(t *testing.T) {
	const doc = `
store: memory
idle_timeout: 10m
absolute_timeout: 8h
activity_flush: 2s
background: ["/api/poll*"]
idle_timeout_by_network:
  - {cidr: 10.20.0.0/16, idle_timeout: 5m}
`
	var c Config
	require.NoError(t, yaml.Unmarshal([]byte(doc), &c))
	require.NoError(t, c.Validate())
	assert.Equal(t, Config{
		Store: "memory", IdleTimeout: 10 * time.Minute, AbsoluteTimeout: 8 * time.Hour,
		ActivityFlush: 2 * time.Second, Background: []string{"/api/poll*"},
		IdleTimeoutByNetwork: []NetworkTimeout{{CIDR: "10.20.0.0/16", IdleTimeout: 5 * time.Minute}},
	}, c)
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; nil means valid
	}{
		{"zero value", Config{}, nil},
		{"file store", Config{Store: "file"}, []string{`session.store: "file" is not supported yet`}},
		{"unknown store", Config{Store: "sql"}, []string{`session.store: "sql" is unknown`}},
		{"negative idle", Config{IdleTimeout: -time.Minute}, []string{"session.idle_timeout: -1m0s is not positive"}},
		{"idle above absolute", Config{IdleTimeout: 2 * time.Hour, AbsoluteTimeout: time.Hour},
			[]string{"session.idle_timeout: 2h0m0s exceeds session.absolute_timeout"}},
		{"negative absolute", Config{AbsoluteTimeout: -time.Hour}, []string{"session.absolute_timeout: -1h0m0s is negative"}},
		{"flush not below idle", Config{IdleTimeout: time.Minute, ActivityFlush: time.Minute},
			[]string{"session.idle_timeout: 1m0s is not longer than session.activity_flush"}},
		{"negative flush", Config{ActivityFlush: -time.Second}, []string{"session.activity_flush: -1s is negative"}},
		{"relative pattern", Config{Background: []string{"/ok*", "api/poll*"}},
			[]string{`session.background[1]: "api/poll*" must start with "/"`}},
		{"long pattern", Config{Background: []string{"/" + strings.Repeat("a", maxPatternLen)}},
			[]string{"session.background[0]: pattern is longer than"}},
		{"bad cidr", Config{IdleTimeoutByNetwork: []NetworkTimeout{{CIDR: "10.0.0.0", IdleTimeout: time.Minute}}},
			[]string{`session.idle_timeout_by_network[0].cidr: "10.0.0.0" is not a CIDR`}},
		{"host bits", Config{IdleTimeoutByNetwork: []NetworkTimeout{{CIDR: "10.1.2.3/8", IdleTimeout: time.Minute}}},
			[]string{`session.idle_timeout_by_network[0].cidr: "10.1.2.3/8" has host bits set: use 10.0.0.0/8`}},
		{"mapped cidr", Config{IdleTimeoutByNetwork: []NetworkTimeout{{CIDR: "::ffff:10.0.0.0/104", IdleTimeout: time.Minute}}},
			[]string{"session.idle_timeout_by_network[0].cidr:", "IPv4-mapped"}},
		{"network idle missing", Config{IdleTimeoutByNetwork: []NetworkTimeout{{CIDR: "10.0.0.0/8"}}},
			[]string{"session.idle_timeout_by_network[0].idle_timeout: 0s is not positive"}},
		{"every problem at once", Config{Store: "redis", IdleTimeout: -1, Background: []string{"x"}},
			[]string{"session.store:", "session.idle_timeout:", "session.background[0]:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestNewManagerRejectsBadConfig(t *testing.T) {
	_, err := NewManager(Config{Store: "redis"}, NewMemory(nil))
	require.ErrorContains(t, err, "session.store")
	_, err = NewManager(Config{}, nil)
	require.ErrorIs(t, err, ErrInvalid)
}
