package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// carePanels asks the demo EMR at upURL (the FHIR base is /fhir) which
// patients each practitioner is on the care team of, leaving out patients
// whose records are labelled very restricted (V): the default policy lets no
// clinician see those, and the mix must be answered 200 throughout.
func carePanels(ctx context.Context, upURL string) (map[string][]string, error) {
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
		for _, s := range e.Resource.Meta.Security {
			if s.Code == "V" {
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
