package policy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRelationshipsConfigDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	assert.Equal(t, RelationshipsConfig{Source: RelationshipsData, TTL: 5 * time.Minute, NegativeTTL: 30 * time.Second,
		Timeout: 200 * time.Millisecond, EncounterLookback: 30 * 24 * time.Hour}, c.Relationships,
		"nothing is looked up unless source is fhir")
	require.NoError(t, c.Relationships.Validate())

	short := RelationshipsConfig{TTL: 10 * time.Second}
	short.SetDefaults()
	assert.Equal(t, 10*time.Second, short.NegativeTTL, "negative answers are never kept longer than ttl")
}

func TestRelationshipsConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  RelationshipsConfig
		want []string // substrings of the error; none = valid
	}{
		{"fhir", RelationshipsConfig{Source: "fhir", TTL: time.Minute, Timeout: time.Second, EncounterLookback: time.Hour}, nil},
		{"negative_ttl longer than ttl", RelationshipsConfig{Source: "fhir", TTL: time.Minute, NegativeTTL: 2 * time.Minute},
			[]string{"policy.relationships.negative_ttl: must be positive and at most ttl"}},
		{"negative_ttl negative", RelationshipsConfig{Source: "fhir", TTL: time.Minute, NegativeTTL: -time.Second},
			[]string{"policy.relationships.negative_ttl"}},
		{"unknown source", RelationshipsConfig{Source: "FHIR"}, []string{`policy.relationships.source: "FHIR" is not data or fhir`}},
		{"every problem at once", RelationshipsConfig{Source: "data", TTL: -1, Timeout: 2 * time.Minute, EncounterLookback: -1},
			[]string{"policy.relationships.ttl", "policy.relationships.timeout", "policy.relationships.encounter_lookback"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.want {
				assert.ErrorContains(t, err, w)
			}
		})
	}
}
