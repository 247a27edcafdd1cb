// Package policy decides requests with an embedded Open Policy Agent
// (Rego v1, [github.com/open-policy-agent/opa/v1/rego]).
//
// [New] loads the policy directory once: every *.rego file except
// *_test.rego, and every *.json, *.yaml and *.yml file as data (placed under
// data by its directory, as `opa eval -d DIR` and `opa test DIR` do);
// hidden files and directories and other file types are skipped. It
// parses the modules as Rego v1, compiles them, checks that the configured
// query names a rule and prepares the query. Any problem fails [New] with
// an error that names the file and line. A policy can also check itself
// once at load: if the query's package defines load_errors (a set of
// strings, typically about the shape of its data), [New] fails with
// [ErrLoadErrors] unless it is empty, so checks that would otherwise run
// on every decision run once. The resulting [Engine] is immutable and safe
// for concurrent use; a reload builds a new Engine and the caller swaps it
// in.
//
// [Engine.Decide] evaluates the prepared query against one
// [chartguard.Input] and returns a [chartguard.Decision] carrying a fresh
// decision ID and the policy [Engine.Revision]. It fails closed: an
// undefined, wrong-shaped, erroring, cancelled or timed-out evaluation, or
// an input that cannot be encoded, denies with one fixed reason
// ([ReasonUndefined], [ReasonMalformed], ...) and an error wrapping
// [ErrUndefined], [ErrShape], [ErrEval], [ErrTimeout], [ErrInput] or the
// context's error. The policy sees exactly the JSON encoding of the Input
// (nil slices are null, omitempty fields are absent), less the parts no
// rule of the policy refers to, which it cannot observe and which are not
// built; its clock (time.now_ns) reads Input.Request.Time when that is set.
// Built-in errors are raised, not treated as undefined, so they deny too.
//
// Every decision's obligations.redact paths must parse ([ParseRedactPath],
// syntax in DESIGN.md); one that does not denies with [ReasonRedactPath].
// Paths the policy writes as constants (in a "redact" object key or a rule
// named redact, or under a "redact" key in its data) are checked at load,
// so a typo fails the load instead of denying requests. An input larger
// than fixed bounds (items, bytes of strings) denies with [ReasonInput].
//
// # Reload
//
// A [Manager] holds the serving Engine in an atomic pointer and replaces
// it on [Manager.Reload]: from the policy directory, or, when
// policy.bundle.url is set, from an OPA bundle server instead (downloaded
// with opa/v1/download: ETag, size limit, signature verification with
// policy.bundle.verification_key_file; the revision is the bundle
// manifest's). [Load] is what a reload accepts: the policy compiles, its
// load_errors is empty and its own tests (*_test.rego, or the bundle's)
// pass. Anything else is refused and the serving engine stays. [Manager.Run]
// watches the directory (fsnotify, debounced) or polls the bundle server
// between poll.min and poll.max. Every attempt is reported to the caller's
// notify function (the proxy counts, logs and audits it). Callers take
// [Manager.Current] once per request, so a request in flight finishes on
// the revision it started with.
//
// [RunTests] and [RunTestsWithCoverage] run the Rego unit tests (test_*
// rules) of a policy directory, for `chartguard policy test`;
// [Engine.Explain] reports the rules that held for one decision, for
// `chartguard policy eval --explain`.
//
// # Trust boundary
//
// The Input is built by the proxy from verified identity and a normalised
// request; this package does not re-check it. The policy directory is
// trusted operator configuration, but is still size-limited, confined to
// its directory (symlinks may not escape it) and compiled without built-ins
// that reach the network (http.send, net.lookup_ip_addr), so a decision
// does no I/O.
//
// # Out of scope
//
// Serving HTTP (this package uses net/http only as the bundle download's
// client, through opa/v1/download), the reload endpoint, SIGHUP, metrics and
// audit events of reloads (proxy and cmd do), applying redactions (the
// response filter does), relationship lookups (they reach the policy
// through Input.Relationship), decision caching, OPA's discovery, status
// and decision-log plugins, delta bundles, and turning reasons into
// user-facing text (proxy does).
package policy
