package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/chartguard/chartguard/examples/demo/dex"
)

// errPolicy is wrapped for a default policy the demo cannot extend.
var errPolicy = errors.New("demo: policy")

// demoCareTeams maps a demo user's email (the demo's fhir_user, see
// oidc.fhir_user_claim) to the practitioner whose care teams they share.
func demoCareTeams() map[string]string {
	return map[string]string{
		"physician@" + dex.EmailDomain: "Practitioner/pr1",
		"nurse@" + dex.EmailDomain:     "Practitioner/pr9",
	}
}

// copyPolicy copies the policy in src (its *.rego files except tests, and
// data.json) to dst, giving each demo clinician the care teams of the
// practitioner they stand for: the default policy lets clinicians see only
// their care teams' patients, keyed by fhir_user, and Dex cannot emit one.
func copyPolicy(src, dst string) error {
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(src, "*.rego"))
	if err != nil {
		return err
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.rego") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o600); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%w: no .rego files in %s (run the demo from examples/demo or set -policy)", errPolicy, src)
	}
	b, err := os.ReadFile(filepath.Join(src, "data.json"))
	if err != nil {
		return err
	}
	b, err = addCareTeams(b)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dst, "data.json"), b, 0o600)
}

// addCareTeams returns data.json with demoCareTeams added to
// chartguard_data.care_teams. Anything else is kept as it was.
func addCareTeams(raw []byte) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%w: data.json: %w", errPolicy, err)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(doc["chartguard_data"], &data); err != nil {
		return nil, fmt.Errorf("%w: data.json chartguard_data: %w", errPolicy, err)
	}
	var teams map[string]json.RawMessage
	if err := json.Unmarshal(data["care_teams"], &teams); err != nil || teams == nil {
		return nil, fmt.Errorf("%w: data.json chartguard_data.care_teams is not an object", errPolicy)
	}
	for user, practitioner := range demoCareTeams() {
		t, ok := teams[practitioner]
		if !ok {
			return nil, fmt.Errorf("%w: data.json has no care teams for %s", errPolicy, practitioner)
		}
		teams[user] = t
	}
	var err error
	if data["care_teams"], err = json.Marshal(teams); err != nil {
		return nil, err
	}
	if doc["chartguard_data"], err = json.Marshal(data); err != nil {
		return nil, err
	}
	return json.MarshalIndent(doc, "", "  ")
}
