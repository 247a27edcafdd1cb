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
// [RunTests] runs the Rego unit tests (test_* rules) of a policy directory,
// for `chartguard policy test`.
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
// Serving HTTP (this package never imports net/http), bundle download,
// relationship lookups (they reach the policy through Input.Relationship),
// decision caching, and turning reasons into user-facing text (proxy does).
package policy
