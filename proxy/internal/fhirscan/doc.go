// Package fhirscan finds every FHIR resource a response body exposes, has
// each one decided, and produces the body that may be sent: a single
// resource passes whole or is denied whole; a Bundle loses its denied
// entries and gains an OperationOutcome entry saying so.
//
// It owns the response-side half of ChartGuard's "authorise response" step
// (DESIGN.md): a strict JSON scan, the description of each resource as the
// policy sees it ([Resource]: type, id, patients per the FHIR R4 Patient
// CompartmentDefinition, meta.security labels), and the re-assembly of
// Bundles. [Filter] is its one entry point; it is pure (no I/O, no HTTP, no
// logging, no global state) and safe for concurrent use.
//
// # Trust boundary
//
// The body comes from the upstream EMR and is treated as untrusted: it may
// echo what a client once wrote. Every JSON object with a string
// "resourceType" member, wherever it sits, is a resource and is decided
// before any byte of it can be delivered. The scan rejects what two JSON
// parsers could read differently (duplicate member names anywhere, invalid
// UTF-8, trailing data, nesting deeper than 64) so the policy sees what the
// client's parser will see. [Options] (bases, URL rewriting) and the
// [Decide] callback come from the caller and are trusted.
//
// # Out of scope
//
// Reading the body (size limits are the caller's), HTTP status and headers,
// the policy itself, field redaction and export blocking, and resolving
// references that need another request (urn:uuid, foreign servers): those
// are reported as PatientStatus "unknown" for the policy to decide.
package fhirscan
