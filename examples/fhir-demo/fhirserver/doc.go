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
//   - batch and transaction: POST to the base itself (other methods 405)
//     with a Bundle of type batch or transaction (below)
//
// Search supports _id, patient, subject, encounter, participant,
// general-practitioner, code, type and identifier where the type defines
// them (see the CapabilityStatement). Like R4 itself, Patient has no
// "patient" parameter, so Patient?patient=… is an ignored parameter.
// Comma lists are OR, repeated parameters AND. Reference values may be "p1"
// or "Patient/p1". _count (default 50, at most 1000), _offset (paging;
// next/previous links) and _total=none are honoured. Unknown parameters are
// ignored, unless the request says "Prefer: handling=strict", which turns
// them into 400. Empty values are ignored, as FHIR servers do.
//
// Modifiers: :not on every parameter (code:not=http://loinc.org|8867-4,
// patient:not=p1, _id:not=p1) matches the resources that the parameter
// without :not would not match, including those without the element. A
// type modifier on a reference parameter, subject:Patient=p1, is
// subject=Patient/p1 (a value of another type matches nothing). Every other
// modifier (:missing, :exact, :text, :identifier, :above, …) is a 400.
//
// _include=Type:param[:TargetType] (Type is the searched type) adds what
// the page's matches reference through param; _revinclude=Type:param
// [:TargetType] adds the resources of Type that reference a match through
// param. param is one of Type's reference parameters (above; there is no
// Observation performer, so Observation:performer is unknown); with
// TargetType only references to that type count. Both may repeat, also in
// compartment searches and POST _search. Included resources follow the
// matches with search.mode "include" and a fullUrl; each resource appears
// once, a match is never repeated as an include, deleted and dangling
// targets are skipped; includes do not count in total and follow only the
// current page. An unknown source type, parameter or target type is ignored
// (400 under strict handling); the wildcard (_include=*, Type:*), :iterate
// and malformed values are a 400. History ignores them like any unknown
// parameter.
//
// A batch or transaction entry is answered exactly as the request it
// describes (request.method GET, HEAD, POST, PUT, DELETE or PATCH;
// request.url relative to the base, or absolute under the base URL the
// client used; request.ifMatch as If-Match; resource as body; the Bundle
// request's Prefer header), through the same router: PATCH is a 405, reads
// and searches return the same resource or searchset Bundle. The answer is
// a batch-response or transaction-response Bundle with one entry per
// request entry, in request order: response.status ("201 Created"),
// response.location (Type/id/_history/vid) and response.etag where the
// interaction sets them, the resource for successes with a body (none for
// HEAD, deletes and return=minimal writes), response.outcome for errors. A
// batch runs its entries in order, each on its own (other requests may
// run between them). A transaction runs in
// the R4 order, DELETE, POST, PUT/PATCH, then GET/HEAD (entry order within
// each), under the store's write lock, so GETs see its writes and no one
// sees it half done; if an entry fails, everything is rolled back and the
// answer is that entry's status and OperationOutcome (issue.expression
// Bundle.entry[n]), not a Bundle. In a transaction, a reference equal to
// the urn:uuid: fullUrl of a POST or PUT entry becomes that resource's
// Type/id (ids of creates are assigned up front); changing one resource
// twice or repeating a urn:uuid fullUrl is a 400. The whole Bundle is a 400
// when it is not a batch or transaction Bundle, or an entry lacks a
// request, method or url, uses ifNoneMatch, ifModifiedSince or
// ifNoneExist, or addresses anything outside the base (another server, the
// base itself). Limits: the body is at most 1 MiB like every write (413),
// at most 1000 entries (413), and the successful GET entries of one Bundle
// return at most 16 MiB together (an entry past that is a 400
// too-costly). Entries are not reported to [Options.OnRequest].
//
// Writes honour "Prefer: return=minimal". Errors are OperationOutcome
// resources with the matching status (400, 404, 405, 410, 412, 413, 415).
//
// When Accept-Encoding accepts gzip (gzip or x-gzip with q > 0, or * with
// q > 0 and gzip not listed), every body is gzip-compressed
// (Content-Encoding: gzip, Content-Length of the compressed bytes), like a
// production server behind nginx; identity, q=0 or no header get the
// uncompressed body. Every response with a body carries "Vary:
// Accept-Encoding". HEAD answers describe the identity representation
// (no Content-Encoding), as nginx does; bodyless answers (204, minimal
// writes) are never encoded.
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
// XML, _include:iterate and wildcards, _sort, chained searches, modifiers
// other than :not and :[type], encodings other than gzip, PATCH (also in
// Bundles), operations ($everything, $export), conditional interactions
// other than If-Match (also in Bundles), urn:uuid resolution in batches
// and in entry URLs, validation beyond resourceType and id (an unresolved
// urn:uuid reference is stored as sent), and persistence. Reads are served
// from JSON marshalled once per version; the server is safe for concurrent
// use.
package fhirserver
