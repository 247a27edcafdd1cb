// Package bench measures what ChartGuard costs. It starts, in one process
// and on loopback only, the demo FHIR upstream, the development token
// issuer, a bare [net/http/httputil.ReverseProxy] and ChartGuard itself
// (bearer tokens, the default OPA policy and the durable, fail-closed audit
// log), then drives the same request mix through each with a closed-loop
// load generator and compares throughput and latency.
//
// ChartGuard is started exactly as `chartguard serve` does: YAML config
// text, [proxy.ParseConfig], [proxy.New], [proxy.Proxy.Serve]. Nothing is
// faked; the numbers include token verification, policy evaluation and an
// fsync per group-committed audit batch.
//
// Every goroutine of each part carries a runtime/pprof label (key
// [LabelKey]) so a CPU profile of the whole process can be split by
// component, and [Analyze] attributes ChartGuard's CPU to pipeline stages
// by function name.
//
// Trust boundary: none. This is a development and CI tool; the issuer mints
// tokens for anyone and every listener is bound to 127.0.0.1. The load
// generator refuses non-loopback targets so it cannot be pointed at a real
// EMR by mistake.
//
// Out of scope: TLS (ChartGuard's listener is plain HTTP here), multi-host
// load, and any pass/fail gate on the numbers; `cmd/loadtest` only reports.
package bench
