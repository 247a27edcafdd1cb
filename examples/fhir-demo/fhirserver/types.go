package fhirserver

// validID reports whether id has the FHIR id syntax [A-Za-z0-9\-\.]{1,64}.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// refParam is a reference search parameter: the element paths that hold
// Reference objects and the resource type a bare id refers to.
type refParam struct {
	target string
	// onlyTarget restricts matches to references of the target type
	// (e.g. "patient" is "subject" narrowed to Patient).
	onlyTarget bool
	paths      [][]string
}

// tokenParam is a token search parameter over CodeableConcepts (coding
// system|code) or, with identifier set, over Identifiers (system|value).
type tokenParam struct {
	identifier bool
	path       []string
}

// typeSpec describes one supported resource type.
type typeSpec struct {
	name   string
	refs   map[string]refParam
	tokens map[string]tokenParam
	// compartment is the parameter that links the type to the Patient
	// compartment, or "" when the type is outside it.
	compartment string
}

func subjectRefs() map[string]refParam {
	return map[string]refParam{
		"subject": {target: "Patient", paths: [][]string{{"subject"}}},
		"patient": {target: "Patient", onlyTarget: true, paths: [][]string{{"subject"}}},
		"encounter": {target: "Encounter", onlyTarget: true,
			paths: [][]string{{"encounter"}, {"context", "encounter"}}},
	}
}

// newTypeSpecs returns the supported types. It is a function, not a
// package variable, so that every Server owns its tables.
func newTypeSpecs() map[string]*typeSpec {
	specs := []*typeSpec{
		{name: "Patient",
			refs: map[string]refParam{
				"general-practitioner": {target: "Practitioner", paths: [][]string{{"generalPractitioner"}}},
			},
			tokens: map[string]tokenParam{"identifier": {identifier: true, path: []string{"identifier"}}},
		},
		{name: "Practitioner",
			tokens: map[string]tokenParam{"identifier": {identifier: true, path: []string{"identifier"}}},
		},
		{name: "Observation", refs: subjectRefs(), compartment: "patient",
			tokens: map[string]tokenParam{"code": {path: []string{"code"}}}},
		{name: "Condition", refs: subjectRefs(), compartment: "patient",
			tokens: map[string]tokenParam{"code": {path: []string{"code"}}}},
		{name: "MedicationRequest", refs: subjectRefs(), compartment: "patient",
			tokens: map[string]tokenParam{"code": {path: []string{"medicationCodeableConcept"}}}},
		{name: "DocumentReference", refs: subjectRefs(), compartment: "patient",
			tokens: map[string]tokenParam{"type": {path: []string{"type"}}}},
		{name: "Encounter", refs: withParticipant(subjectRefs(), "individual"), compartment: "patient"},
		{name: "CareTeam", refs: withParticipant(subjectRefs(), "member"), compartment: "patient"},
	}
	out := make(map[string]*typeSpec, len(specs))
	for _, s := range specs {
		out[s.name] = s
	}
	return out
}

// withParticipant adds the "participant" parameter (a Practitioner in
// participant[].elem) and drops "encounter", which these types lack.
func withParticipant(m map[string]refParam, elem string) map[string]refParam {
	delete(m, "encounter")
	m["participant"] = refParam{target: "Practitioner", paths: [][]string{{"participant", elem}}}
	return m
}
