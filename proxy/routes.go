package proxy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/chartguard/chartguard/chartguard"
)

// RouteConfig classifies a UI path (config key "routes"). Path segments are
// literal or a placeholder: {patient} binds the patient, {id} the resource
// id, any other {name} matches one segment.
type RouteConfig struct {
	Path     string   `yaml:"path"`
	Methods  []string `yaml:"methods"`
	Resource string   `yaml:"resource"`
	Action   string   `yaml:"action"`
}

type route struct {
	segs    []string
	methods []string
	typ     string
	action  string
}

func compileRoute(i int, rc RouteConfig) (route, error) {
	key := fmt.Sprintf("routes[%d]", i)
	if !strings.HasPrefix(rc.Path, "/") {
		return route{}, fmt.Errorf("%s.path: must start with '/' (e.g. /chart/{patient}/notes)", key)
	}
	if rc.Action == "" {
		return route{}, fmt.Errorf("%s.action: required (e.g. read)", key)
	}
	r := route{segs: splitPath(rc.Path), typ: rc.Resource, action: rc.Action}
	for _, s := range r.segs {
		if strings.HasPrefix(s, "{") != strings.HasSuffix(s, "}") {
			return route{}, fmt.Errorf("%s.path: malformed placeholder %q", key, s)
		}
	}
	for _, m := range rc.Methods {
		r.methods = append(r.methods, strings.ToUpper(m))
	}
	return r, nil
}

// classifyRoute matches a canonical path against the configured routes.
// An unmatched path yields a route resource with no type, which the policy
// denies by default.
func (c *classifier) classifyRoute(method, path string) chartguard.Resource {
	res := chartguard.Resource{Kind: chartguard.KindRoute, Phase: chartguard.PhaseRequest,
		Patients: []string{}, Labels: []string{}, PatientStatus: chartguard.PatientsUnknown,
		Action: chartguard.ActionHTTP}
	segs := splitPath(path)
	for _, r := range c.routes {
		if len(r.methods) > 0 && !slices.Contains(r.methods, method) {
			continue
		}
		patient, id, ok := r.match(segs)
		if !ok {
			continue
		}
		res.Type, res.ID, res.Interaction, res.Action = r.typ, id, r.action, r.action
		res.PatientStatus = chartguard.PatientsNone
		if patient != "" {
			res.Patients = append(res.Patients, patient)
			res.PatientStatus = chartguard.PatientsKnown
		}
		return res
	}
	return res
}

func (r *route) match(segs []string) (patient, id string, ok bool) {
	if len(segs) != len(r.segs) {
		return "", "", false
	}
	for i, want := range r.segs {
		got := segs[i]
		switch {
		case want == "{patient}":
			if !isID(got) {
				return "", "", false
			}
			patient = got
		case want == "{id}":
			if !isID(got) {
				return "", "", false
			}
			id = got
		case strings.HasPrefix(want, "{"):
		case want != got:
			return "", "", false
		}
	}
	return patient, id, true
}
