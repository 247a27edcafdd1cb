package fhirscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fuzzAllowed is the fuzz policy. It looks only at what an independent
// scan can recompute: a resource is denied when it is labelled R or its
// type name has odd length.
func fuzzAllowed(typ string, labels []string) bool {
	return !slices.Contains(labels, "R") && len(typ)%2 == 0
}

func fuzzRewrite(u string) string {
	if rest, ok := strings.CutPrefix(u, "http://up/fhir"); ok {
		return "https://proxy/fhir" + rest
	}
	return u
}

// FuzzFilter checks that Filter never panics, fails only with its
// sentinels, and, on success, sends valid JSON in which every resource (an
// object with a string resourceType, found by encoding/json, not by our
// scanner) was allowed, except the top-level Bundle and the outcome entry
// Filter adds; and that Delivered lists exactly those resources.
func FuzzFilter(f *testing.F) {
	// The seed corpus is testdata/fuzz/FuzzFilter.
	f.Fuzz(func(t *testing.T, body []byte) {
		opts := Options{Bases: []string{"http://up/fhir"}, Rewrite: fuzzRewrite}
		res, err := Filter(body, opts, func(r Resource) (bool, error) {
			if r.Patients == nil || r.Labels == nil || !slices.IsSorted(r.Patients) || !slices.IsSorted(r.Labels) {
				t.Fatalf("Resource not normalised: %+v", r)
			}
			return fuzzAllowed(r.Type, r.Labels), nil
		})
		if err != nil {
			if !errors.Is(err, ErrDenied) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Filter error = %v, want ErrDenied or ErrMalformed", err)
			}
			if res.Body != nil || res.Delivered != nil {
				t.Fatalf("Filter failed but returned a body or deliveries")
			}
			return
		}
		if !json.Valid(res.Body) {
			t.Fatalf("output is not valid JSON: %q", res.Body)
		}
		if !res.Bundle && !bytes.Contains(body, []byte("Bundle")) && !bytes.Equal(body, res.Body) {
			t.Fatalf("single resource changed:\n in: %q\nout: %q", body, res.Body)
		}
		dec := json.NewDecoder(bytes.NewReader(res.Body))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("decode output: %v", err)
		}
		found := 0
		var visit func(v any, top bool)
		visit = func(v any, top bool) {
			switch v := v.(type) {
			case []any:
				for _, e := range v {
					visit(e, false)
				}
			case map[string]any:
				if typ, ok := v["resourceType"].(string); ok && !(top && typ == "Bundle") {
					found++
					if !fuzzAllowed(typ, genericLabels(v)) {
						t.Fatalf("denied resource delivered: %v", v)
					}
				}
				for _, m := range v {
					visit(m, false)
				}
			}
		}
		top, _ := doc.(map[string]any)
		if res.Denied > 0 {
			entries, _ := top["entry"].([]any)
			var want any
			if err := json.Unmarshal([]byte(outcomeEntry), &want); err != nil {
				t.Fatal(err)
			}
			if len(entries) == 0 || !reflect.DeepEqual(entries[len(entries)-1], want) {
				t.Fatalf("last entry is not the outcome: %q", res.Body)
			}
			top["entry"] = entries[:len(entries)-1]
			if _, ok := top["total"]; ok {
				t.Fatalf("total kept after a denial")
			}
		}
		visit(doc, true)
		if found != len(res.Delivered) {
			t.Fatalf("output holds %d resources, Delivered lists %d", found, len(res.Delivered))
		}
	})
}

// genericLabels recomputes meta.security codes from a decoded resource.
func genericLabels(res map[string]any) []string {
	meta, _ := res["meta"].(map[string]any)
	var codings []any
	switch sec := meta["security"].(type) {
	case []any:
		codings = sec
	case map[string]any:
		codings = []any{sec}
	}
	var labels []string
	for _, c := range codings {
		if c, ok := c.(map[string]any); ok {
			if code, ok := c["code"].(string); ok {
				labels = append(labels, code)
			}
		}
	}
	return labels
}
