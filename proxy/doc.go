// Package proxy owns the ChartGuard request pipeline: it turns an HTTP
// request into one canonical target, classifies it (FHIR interaction, type,
// id, patients; route rules for UI paths), authenticates the caller, proves
// the patients a write touches (its body and the current version), asks the
// policy, forwards the request with [net/http/httputil.ReverseProxy] (Rewrite
// only), asks the policy again about every resource of the FHIR response
// before any byte of it leaves, and commits exactly one audit event per
// request before the first body byte leaves. Batches and transactions are
// decided entry by entry.
//
// Around the pipeline it owns what needs HTTP or the upstream: browser
// sign-in and sessions (sso.go), care relationships looked up in the EMR as
// ChartGuard's service identity (relationships*.go), and the admin listener
// (admin*.go: health, readiness, metrics, policy reload, the audited audit
// queries). A request takes the policy engine serving when it starts and
// keeps it for both phases, so a reload never splits one request.
//
// It also owns configuration: [LoadConfig] reads the one YAML file into a
// [Config] made of each package's own Config, and [New] builds a [Proxy] from
// it — the one way to start ChartGuard (cmd/chartguard, the demo and the
// benchmarks all use it).
//
// Trust boundary: everything from the client is untrusted — path, query,
// headers, cookies, X-Forwarded-For (unless the peer is a trusted proxy) and
// bodies. The upstream is trusted to answer about the request it was sent,
// not to set ChartGuard's cookies or CORS headers, and not to return only
// what the caller may see: what it answers is checked, and what cannot be
// checked is refused. Policy reasons are shown to
// clients; internal error text never is.
//
// Out of scope here: token verification (package authn), policy evaluation
// (package policy) and the audit log's storage (package audit).
package proxy
