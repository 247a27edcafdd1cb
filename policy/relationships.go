package policy

import (
	"errors"
	"fmt"
	"time"
)

// Relationship sources for [RelationshipsConfig.Source].
const (
	// RelationshipsData: nothing is looked up; care relationships are the
	// static data beside the Rego (tests, the demo).
	RelationshipsData = "data"
	// RelationshipsFHIR: the proxy asks the EMR (CareTeam, Encounter,
	// Patient.generalPractitioner) and passes the answer in
	// Input.Relationship.
	RelationshipsFHIR = "fhir"
)

// Defaults applied by [RelationshipsConfig.SetDefaults].
const (
	DefaultRelationshipsTTL      = 5 * time.Minute
	DefaultRelationshipsNegTTL   = 30 * time.Second
	DefaultRelationshipsTimeout  = 200 * time.Millisecond
	DefaultRelationshipsLookback = 30 * 24 * time.Hour
)

// RelationshipsConfig is "policy.relationships": where the care
// relationships the policy reads in input.relationship come from. The
// lookups themselves are the proxy's (this package does no I/O); the config
// sits here because it belongs to the policy contract.
type RelationshipsConfig struct {
	// Source is "data" (the default: nothing is looked up) or "fhir".
	Source string `yaml:"source"`
	// TTL is how long a looked-up relationship is reused. If zero, 5m.
	//
	// Security: a clinician taken off a care team keeps what the cached
	// relationship grants for up to TTL. Accepted risk, traded for not
	// asking the EMR on every request; lower it where that matters.
	TTL time.Duration `yaml:"ttl"`
	// NegativeTTL is how long an answer naming no care team, PCP or
	// encounter is reused. If zero, 30s or TTL, whichever is shorter.
	// Shorter than TTL because the common change is a new one: a nurse
	// added to the team, a patient admitted to the ward. Each would
	// otherwise be denied, and break the glass, for up to TTL.
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	// Timeout bounds the lookups of one request, together (each (user,
	// patient) pair, 8 at a time). If zero, 200ms. A lookup that runs out
	// of time denies with "care relationship could not be checked" (fail
	// closed).
	Timeout time.Duration `yaml:"timeout"`
	// EncounterLookback is how far back an Encounter counts
	// (Encounter?date=ge<now-lookback>). If zero, 720h (30 days). Keep it
	// at least as long as the longest encounter window the policy allows.
	EncounterLookback time.Duration `yaml:"encounter_lookback"`
}

// SetDefaults fills zero fields with their defaults.
func (c *RelationshipsConfig) SetDefaults() {
	if c.Source == "" {
		c.Source = RelationshipsData
	}
	if c.TTL == 0 {
		c.TTL = DefaultRelationshipsTTL
	}
	if c.NegativeTTL == 0 && c.TTL > 0 {
		c.NegativeTTL = min(DefaultRelationshipsNegTTL, c.TTL)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultRelationshipsTimeout
	}
	if c.EncounterLookback == 0 {
		c.EncounterLookback = DefaultRelationshipsLookback
	}
}

// Validate reports every problem at once; each names its key and the fix.
func (c *RelationshipsConfig) Validate() error {
	var errs []error
	if c.Source != RelationshipsData && c.Source != RelationshipsFHIR {
		errs = append(errs, fmt.Errorf("policy.relationships.source: %q is not data or fhir", c.Source))
	}
	if c.TTL < 0 {
		errs = append(errs, errors.New("policy.relationships.ttl: must be positive, e.g. 5m"))
	}
	if c.NegativeTTL < 0 || (c.TTL > 0 && c.NegativeTTL > c.TTL) {
		errs = append(errs, errors.New("policy.relationships.negative_ttl: must be positive and at most ttl, e.g. 30s"))
	}
	if c.Timeout < 0 || c.Timeout > time.Minute {
		errs = append(errs, errors.New("policy.relationships.timeout: must be between 0 and 1m, e.g. 200ms"))
	}
	if c.EncounterLookback < 0 {
		errs = append(errs, errors.New("policy.relationships.encounter_lookback: must be positive, e.g. 720h (30 days)"))
	}
	return errors.Join(errs...)
}
