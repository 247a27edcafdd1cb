package policy

import "time"

// Defaults applied by [Config.SetDefaults].
const (
	DefaultDir         = "configs/policy"
	DefaultQuery       = "data.chartguard.decision"
	DefaultEvalTimeout = 50 * time.Millisecond
)

// Config is the "policy" section of the ChartGuard configuration.
type Config struct {
	// Dir is the policy directory. If empty, "configs/policy".
	Dir string `yaml:"dir"`
	// Query is the Rego reference that yields the decision. If empty,
	// "data.chartguard.decision".
	Query string `yaml:"query"`
	// EvalTimeout bounds one evaluation. If zero, 50ms.
	//
	// Security: a slow or looping policy would otherwise hold every
	// request. An evaluation that runs out of time denies (fail closed).
	// Accepted risk: on a saturated machine a normal evaluation (median
	// well under 1ms) can be descheduled past the limit and be denied;
	// the denial is audited with reason "policy evaluation timed out".
	EvalTimeout time.Duration `yaml:"eval_timeout"`
	// Relationships is where care relationships come from
	// ("policy.relationships"); see [RelationshipsConfig].
	Relationships RelationshipsConfig `yaml:"relationships"`
	// Bundle, when its URL is set, makes an OPA bundle server the policy
	// source instead of Dir ("policy.bundle"); see [BundleConfig].
	Bundle BundleConfig `yaml:"bundle"`
}

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	if c.Query == "" {
		c.Query = DefaultQuery
	}
	if c.EvalTimeout == 0 {
		c.EvalTimeout = DefaultEvalTimeout
	}
	c.Relationships.SetDefaults()
	c.Bundle.SetDefaults()
}
