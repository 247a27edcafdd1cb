package policy

import (
	"errors"
	"fmt"

	"github.com/chartguard/chartguard/chartguard"
)

// Bounds on one decision's input. The proxy limits what a request can
// carry (limits.max_query_params, max_target_length, ...), but the policy
// must not depend on that: an input over these bounds denies with
// [ReasonInput] before any of it is encoded.
const (
	// maxInputItems bounds the list elements and map entries in an input.
	maxInputItems = 10_000
	// maxInputBytes bounds the total length of its strings.
	maxInputBytes = 1 << 20
)

// errInputTooLarge reports an input over the bounds above.
var errInputTooLarge = errors.New("input too large")

// checkInputSize fails if in holds more than maxInputItems list elements
// and map entries or more than maxInputBytes of strings. It only adds up
// lengths (this runs on every decision). TestCheckInputSizeCountsEveryString
// fails when a string added to the shared types is not counted here.
func checkInputSize(in *chartguard.Input) error {
	var items, bytes int
	strs := func(ss []string) {
		items += len(ss)
		for _, s := range ss {
			bytes += len(s)
		}
	}
	u := &in.User
	bytes += len(u.Issuer) + len(u.Subject) + len(u.Name) + len(u.Email) + len(u.Department) + len(u.FHIRUser)
	strs(u.Roles)
	strs(u.Groups)
	strs(u.PatientLinks)
	t := &in.Token
	bytes += len(t.Kind) + len(t.ClientID) + len(t.LaunchPatient) + len(t.PurposeOfUse)
	strs(t.Scopes)
	bytes += len(in.Session.MFAMethod)
	items += len(in.Session.BreakGlass)
	for _, g := range in.Session.BreakGlass {
		bytes += len(g.Grant) + len(g.Patient) + len(g.Reason)
	}
	r := &in.Request
	bytes += len(r.Method) + len(r.Path) + len(r.IP)
	items += len(r.Query)
	for k, v := range r.Query {
		bytes += len(k)
		strs(v)
	}
	res := &in.Resource
	bytes += len(res.Kind) + len(res.Phase) + len(res.Type) + len(res.ID) + len(res.PatientStatus) +
		len(res.Action) + len(res.Interaction) + len(res.Operation)
	strs(res.Patients)
	strs(res.Labels)
	items += len(in.Relationship)
	for k, rel := range in.Relationship {
		bytes += len(k) + len(rel.Department)
	}
	if items > maxInputItems || bytes > maxInputBytes {
		return fmt.Errorf("%w: %d items, %d bytes of strings (limits %d, %d)", errInputTooLarge, items, bytes, maxInputItems, maxInputBytes)
	}
	return nil
}
