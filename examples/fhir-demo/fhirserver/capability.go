package fhirserver

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"
)

type capSearchParam struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type capInteraction struct {
	Code string `json:"code"`
}

type capResource struct {
	Type         string           `json:"type"`
	Interaction  []capInteraction `json:"interaction"`
	Versioning   string           `json:"versioning"`
	ReadHistory  bool             `json:"readHistory"`
	UpdateCreate bool             `json:"updateCreate"`
	// The _include and _revinclude values this type supports.
	SearchInclude    []string         `json:"searchInclude,omitempty"`
	SearchRevInclude []string         `json:"searchRevInclude,omitempty"`
	SearchParam      []capSearchParam `json:"searchParam"`
}

type capRest struct {
	Mode        string           `json:"mode"`
	Resource    []capResource    `json:"resource"`
	Interaction []capInteraction `json:"interaction"`
}

type capSoftware struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type capabilityStatement struct {
	ResourceType string      `json:"resourceType"`
	Status       string      `json:"status"`
	Date         string      `json:"date"`
	Kind         string      `json:"kind"`
	Software     capSoftware `json:"software"`
	FHIRVersion  string      `json:"fhirVersion"`
	Format       []string    `json:"format"`
	Rest         []capRest   `json:"rest"`
}

// capabilityStatement describes what this server supports, derived from
// the type tables so the two cannot disagree.
func (s *Server) capabilityStatement(date time.Time) []byte {
	names := make([]string, 0, len(s.specs))
	for name := range s.specs {
		names = append(names, name)
	}
	slices.Sort(names)
	interactions := []capInteraction{{"read"}, {"vread"}, {"update"}, {"delete"},
		{"history-instance"}, {"history-type"}, {"create"}, {"search-type"}}
	rest := capRest{Mode: "server",
		Interaction: []capInteraction{{"transaction"}, {"batch"}, {"history-system"}}}
	for _, name := range names {
		spec := s.specs[name]
		params := []capSearchParam{{"_id", "token"}}
		for p := range spec.refs {
			params = append(params, capSearchParam{p, "reference"})
		}
		for p := range spec.tokens {
			params = append(params, capSearchParam{p, "token"})
		}
		slices.SortFunc(params, func(a, b capSearchParam) int {
			return cmp.Compare(a.Name, b.Name)
		})
		rest.Resource = append(rest.Resource, capResource{
			Type: name, Interaction: interactions, Versioning: "versioned",
			ReadHistory: true, UpdateCreate: true, SearchParam: params,
			SearchInclude: s.includeNames(name), SearchRevInclude: s.revIncludeNames(name),
		})
	}
	body, err := json.Marshal(capabilityStatement{
		ResourceType: "CapabilityStatement", Status: "active",
		Date: date.Format("2006-01-02"), Kind: "instance",
		Software:    capSoftware{Name: "ChartGuard FHIR demo server", Version: "1"},
		FHIRVersion: "4.0.1", Format: []string{"json"}, Rest: []capRest{rest},
	})
	if err != nil { // unreachable: the value holds only strings and bools
		return []byte(`{"resourceType":"CapabilityStatement","status":"active","kind":"instance","fhirVersion":"4.0.1"}`)
	}
	return body
}

// includeNames lists "Type:param" for the reference parameters of typ.
func (s *Server) includeNames(typ string) []string {
	var out []string
	for p := range s.specs[typ].refs {
		out = append(out, typ+":"+p)
	}
	slices.Sort(out)
	return out
}

// revIncludeNames lists "Source:param" for the reference parameters whose
// default target is typ. Others are accepted too (they find nothing here).
func (s *Server) revIncludeNames(typ string) []string {
	var out []string
	for name, spec := range s.specs {
		for p, rp := range spec.refs {
			if rp.target == typ {
				out = append(out, name+":"+p)
			}
		}
	}
	slices.Sort(out)
	return out
}
