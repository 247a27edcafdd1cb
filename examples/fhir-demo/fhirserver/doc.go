// Package fhirserver is an in-memory FHIR R4 server for development, tests
// and benchmarks of ChartGuard. It plays the EMR upstream: it serves
// deterministic synthetic patients and answers the REST interactions the proxy
// has to understand. It is not part of the chartguard binary and must never
// hold real patient data.
//
// # Trust boundary
//
// The server trusts nothing and authorises nothing: it answers every request
// it receives, as an EMR behind ChartGuard would. It never records request
// headers and never echoes request values in errors. Links and Location
// headers are absolute URLs built from the request's Host and [Options.Base],
// like a real server behind a proxy; do not expose it to untrusted networks.
//
// # Interactions (FHIR R4, JSON only, under [Options.Base])
//
//   - capabilities: GET /metadata
//   - read, vread: GET /{type}/{id}, GET /{type}/{id}/_history/{vid}
//   - history: GET /{type}/{id}/_history, /{type}/_history, /_history
//   - search: GET /{type}?…, POST /{type}/_search (form body merged with the
//     URL query), compartment search GET /Patient/{id}/{type}
//   - create POST /{type}, update PUT /{type}/{id} (update-as-create
//     allowed), delete DELETE /{type}/{id}; If-Match is honoured on update
//     and delete (412 on mismatch)
//
// Search supports _id, patient, subject, encounter, participant,
// general-practitioner, code, type and identifier where the type defines
// them (see the CapabilityStatement). Like R4 itself, Patient has no
// "patient" parameter, so Patient?patient=… is an ignored parameter.
// Comma lists are OR, repeated parameters AND. Reference values may be "p1"
// or "Patient/p1". _count (default 50, at most 1000), _offset (paging;
// next/previous links) and _total=none are honoured. Unknown parameters and
// result parameters such as _include are ignored, unless the request says
// "Prefer: handling=strict", which turns them into 400. Empty values are
// ignored, as FHIR servers do; modifiers on supported parameters are refused
// with 400. Writes honour "Prefer: return=minimal". Errors are
// OperationOutcome resources with the matching status (400, 404, 405, 410,
// 412, 413, 415).
//
// # Synthetic data
//
// The data set is a pure function of [Options.Seed], [Options.Patients] and
// the UTC day of [Options.Now] (clinical dates are relative to that day so
// that "recent encounter" rules keep working). Ids are stable:
// practitioners pr1…pr10 and patients p1…pN; each patient has a CareTeam
// (ct-pN-1), Encounters (enc-pN-k), Observations (obs-pN-k, LOINC codes with
// valueQuantity), Conditions (cond-pN-k, SNOMED CT), MedicationRequests
// (med-pN-k, RxNorm) and DocumentReferences (doc-pN-k, text/plain
// attachments). Names, MRNs (urn:oid:2.16.840.1.113883.19.5), SSNs
// (http://hl7.org/fhir/sid/us-ssn, all in the never-issued 9xx range) and
// 555-01xx phone numbers are fictitious.
//
// Security labels (meta.security) and tags (meta.tag) that policy tests rely on:
//
//   - p3: every resource of the record carries confidentiality R
//     (http://terminology.hl7.org/CodeSystem/v3-Confidentiality).
//   - p4 always has a psychiatric Condition, consult note and
//     MedicationRequest labelled PSY
//     (http://terminology.hl7.org/CodeSystem/v3-ActCode) and R; other
//     patients get them at random.
//   - p5 always has an HIV Condition labelled HIV and R; others at random.
//   - p7 is a VIP: every resource carries confidentiality V and the tag
//     {system http://chartguard.example/tags, code vip}.
//   - p8 is an employee-patient: every resource carries the tag
//     {system http://chartguard.example/tags, code employee}.
//
// Fixed points for demos and policy tests: p1's GP and care-team lead is
// pr1; pr1 is on neither p2's care team nor its encounters; p1 and p2 each
// had an encounter within the last 30 days. pr1…pr6 are physicians,
// pr7…pr10 nurses.
//
// The strongest confidentiality code wins (V over R); a resource carries at
// most one. Resources without labels have no meta.security.
//
// # Out of scope
//
// XML, _include/_revinclude, _sort, chained and modifier searches, PATCH,
// batch/transaction, operations ($everything, $export), conditional
// interactions other than If-Match, validation beyond resourceType and id,
// and persistence. Reads are served from JSON marshalled once per version;
// the server is safe for concurrent use.
package fhirserver
