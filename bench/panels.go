package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// carePanels asks the demo EMR at upURL (the FHIR base is /fhir) which
// patients each practitioner is on the care team of, leaving out the
// patients the policy in policyDir opens only through break-the-glass:
// those whose Patient record carries a restricted or sensitive label, and
// VIP and employee patients. The mix must be answered 200 throughout.
func carePanels(ctx context.Context, upURL, policyDir string) (map[string][]string, error) {
	sensitive, err := breakGlassOnly(policyDir)
	if err != nil {
		return nil, err
	}
	var teams struct {
		Entry []struct {
			Resource struct {
				Subject     struct{ Reference string } `json:"subject"`
				Participant []struct {
					Member struct{ Reference string } `json:"member"`
				} `json:"participant"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := getJSON(ctx, upURL+"/fhir/CareTeam?_count=1000", &teams); err != nil {
		return nil, err
	}
	var patients struct {
		Entry []struct {
			Resource struct {
				ID   string `json:"id"`
				Meta struct {
					Security []struct{ Code string } `json:"security"`
				} `json:"meta"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := getJSON(ctx, upURL+"/fhir/Patient?_count=1000", &patients); err != nil {
		return nil, err
	}
	veryRestricted := map[string]bool{}
	for _, e := range patients.Entry {
		if sensitive.patients[e.Resource.ID] {
			veryRestricted[e.Resource.ID] = true
		}
		for _, s := range e.Resource.Meta.Security {
			if sensitive.labels[s.Code] {
				veryRestricted[e.Resource.ID] = true
			}
		}
	}
	panels := map[string][]string{}
	for _, e := range teams.Entry {
		pid, ok := strings.CutPrefix(e.Resource.Subject.Reference, "Patient/")
		if !ok || veryRestricted[pid] {
			continue
		}
		for _, p := range e.Resource.Participant {
			if m := p.Member.Reference; strings.HasPrefix(m, "Practitioner/") && !slices.Contains(panels[m], pid) {
				panels[m] = append(panels[m], pid)
			}
		}
	}
	return panels, nil
}

func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("bench: care teams: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: care teams: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("bench: care teams: %w", err)
	}
	return nil
}

// sensitivity is what the default policy's data opens only through
// break-the-glass.
type sensitivity struct{ labels, patients map[string]bool }

// breakGlassOnly reads the label sets and the VIP and employee lists from
// the policy's data.json, so the mix follows the policy as it changes.
func breakGlassOnly(policyDir string) (sensitivity, error) {
	raw, err := os.ReadFile(filepath.Join(policyDir, "data.json"))
	if err != nil {
		return sensitivity{}, fmt.Errorf("bench: policy data: %w", err)
	}
	var data struct {
		D map[string]json.RawMessage `json:"chartguard_data"`
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		return sensitivity{}, fmt.Errorf("bench: policy data: %w", err)
	}
	out := sensitivity{labels: map[string]bool{}, patients: map[string]bool{}}
	for key, into := range map[string]map[string]bool{"restricted_labels": out.labels,
		"very_restricted_labels": out.labels, "sensitive_labels": out.labels,
		"vip_patients": out.patients, "employee_patients": out.patients} {
		var set map[string]bool
		if err := json.Unmarshal(data.D[key], &set); err != nil {
			return sensitivity{}, fmt.Errorf("bench: policy data %s: %w", key, err)
		}
		for k, v := range set {
			into[k] = into[k] || v
		}
	}
	return out, nil
}
