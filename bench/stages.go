package bench

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// Stages CPU is attributed to.
const (
	StageNormalise = "normalise+classify"
	StageAuthn     = "authenticate"
	StagePolicy    = "policy"
	StageAudit     = "audit"
	StageMetrics   = "metrics"
	StageResponse  = "response scan"
	StageGlue      = "proxy glue"
	StageHTTP      = "forwarding/HTTP"
	StageIO        = "I/O (syscall)"
	StageRuntime   = "GC/runtime"
	StageUpstream  = "upstream (fhirserver)"
	StageLoad      = "load generator"
	StageBare      = "bare proxy"
	StageOther     = "other"
)

// ErrNoCPU is returned by [Analyze] for a profile that is not a CPU
// profile or holds no samples.
var ErrNoCPU = errors.New("bench: not a CPU profile with samples")

const modulePrefix = "github.com/chartguard/chartguard/"

type rule struct {
	stage    string
	prefixes []string
}

// transparent frames wrap whole stages (the pipeline itself, the serve
// loop, the upstream round trip); they never decide a sample's stage.
var transparent = []string{
	"proxy.(*Proxy).ServeHTTP", "proxy.(*Proxy).forward", "proxy.(*Proxy).Serve",
	"proxy.(*Proxy).finish", "proxy.timedTransport.RoundTrip",
}

// stageRules name a pipeline stage by function name prefix (the module
// path trimmed). A sample belongs to the stage of its innermost matching
// frame, so what a stage calls (allocation, syscalls, JSON) is that
// stage's cost: an audit fsync is audit, not I/O. Order matters only
// within one frame: "proxy." catches the rest of the pipeline last.
var stageRules = []rule{
	{StageNormalise, []string{"proxy.normaliseTarget", "proxy.pathSegments", "proxy.joinSegments",
		"proxy.decodeComponent", "proxy.checkDecoded", "proxy.parseQuery", "proxy.checkParamName",
		"proxy.encodeParams", "proxy.escape", "proxy.keepLiteral", "proxy.unhex", "proxy.isHex",
		"proxy.isAlnum", "proxy.reject", "proxy.(*Proxy).classify", "proxy.(*classifier).",
		"proxy.classifier.", "proxy.inCompartment", "proxy.isPatientParam", "proxy.splitPath",
		"proxy.isType", "proxy.isID", "proxy.isOperation", "proxy.hasWidening", "proxy.appendUnique",
		"proxy.auditAction", "proxy.(*route).", "proxy.(*Proxy).mergeForm"}},
	{StagePolicy, []string{"proxy.(*Proxy).authorise", "proxy.(*Proxy).decide", "proxy.(*Proxy).input",
		"proxy.(*Proxy).responseDecider", "proxy.(*target).query", "policy.", "github.com/open-policy-agent/"}},
	{StageAuthn, []string{"authn.", "github.com/coreos/go-oidc", "github.com/golang-jwt/",
		"github.com/go-jose/"}},
	{StageAudit, []string{"audit.", "proxy.(*Proxy).commit", "proxy.(*Proxy).event"}},
	{StageMetrics, []string{"proxy.(*metrics).", "github.com/prometheus/"}},
	{StageUpstream, []string{"examples/fhir-demo/fhirserver."}},
	{StageResponse, []string{"proxy/internal/fhirscan.", "proxy.(*Proxy).checkResponse", "proxy.readUpstreamBody",
		"proxy.setBody", "proxy.(*Proxy).checkShape", "proxy.mergeDenied", "proxy.isFHIRJSON", "proxy.exposedPatients"}},
	{StageGlue, []string{"proxy."}},
}

// plumbingRules classify samples no stage claims, in this order: the
// first rule with a matching frame anywhere in the stack wins.
var plumbingRules = []rule{
	{StageRuntime, []string{"runtime.gc", "runtime.bgsweep", "runtime.bgscavenge", "runtime.mallocgc",
		"runtime.markroot", "runtime.scanobject", "runtime.greyobject", "runtime.sweepone",
		"runtime.wbBuf", "runtime.(*mheap)", "runtime.(*mcentral)", "runtime.(*mcache)",
		"runtime.(*gcWork)", "runtime.(*mspan)"}},
	{StageIO, []string{"syscall.", "internal/poll.", "internal/runtime/syscall.", "runtime.netpoll",
		"golang.org/x/sys/unix."}},
	{StageHTTP, []string{"net/", "net.", "bufio.", "crypto/tls.", "mime."}},
	{StageRuntime, []string{"runtime.", "internal/runtime/"}},
}

// labelStages map component labels to whole-process stages; ChartGuard
// and unlabelled samples (GC workers, scheduler) go through the rules.
var labelStages = map[string]string{
	CompLoad: StageLoad, CompUpstream: StageUpstream, CompBare: StageBare, CompIssuer: StageOther,
}

// Share is the CPU time a stage (or function) took in a profile.
type Share struct {
	Name    string
	CPU     time.Duration
	Percent float64 // of the table's total
}

// Breakdown is a CPU profile split by stage.
type Breakdown struct {
	Total      time.Duration // every sample
	ChartGuard time.Duration // samples labelled chartguard
	// Process splits every sample: by component label first, then by
	// the stage rules.
	Process []Share
	// Stages splits ChartGuard's samples by the stage rules.
	Stages []Share
	// Top lists ChartGuard's hottest functions by self time.
	Top []Share
}

// Analyze attributes the CPU time of a profile taken while the harness ran
// to stages (see the rules above). Largest shares come first.
func Analyze(p *profile.Profile) (Breakdown, error) {
	vi := slices.IndexFunc(p.SampleType, func(t *profile.ValueType) bool { return t.Type == "cpu" })
	if vi < 0 || len(p.Sample) == 0 {
		return Breakdown{}, ErrNoCPU
	}
	var b Breakdown
	process, stages, flat := map[string]int64{}, map[string]int64{}, map[string]int64{}
	var total, cg int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		label := ""
		if l := s.Label[LabelKey]; len(l) > 0 {
			label = l[0]
		}
		if st, ok := labelStages[label]; ok {
			process[st] += v
			continue
		}
		st := stageOf(s)
		process[st] += v
		if label == CompChartGuard {
			cg += v
			stages[st] += v
			flat[leafName(s)] += v
		}
	}
	b.Total, b.ChartGuard = time.Duration(total), time.Duration(cg)
	b.Process, b.Stages = shares(process, total, 0), shares(stages, cg, 0)
	b.Top = shares(flat, cg, 15)
	return b, nil
}

// stageOf classifies one sample by its frames (innermost first).
func stageOf(s *profile.Sample) string {
	var names []string
	for _, loc := range s.Location {
		for _, ln := range loc.Line { // Line[0] is the innermost inlined call
			if ln.Function != nil {
				names = append(names, strings.TrimPrefix(ln.Function.Name, modulePrefix))
			}
		}
	}
	for _, n := range names {
		if hasAnyPrefix(n, transparent) {
			continue
		}
		for _, r := range stageRules {
			if hasAnyPrefix(n, r.prefixes) {
				return r.stage
			}
		}
	}
	for _, r := range plumbingRules {
		for _, n := range names {
			if hasAnyPrefix(n, r.prefixes) {
				return r.stage
			}
		}
	}
	return StageOther
}

func leafName(s *profile.Sample) string {
	if len(s.Location) > 0 && len(s.Location[0].Line) > 0 && s.Location[0].Line[0].Function != nil {
		return s.Location[0].Line[0].Function.Name
	}
	return "?"
}

func hasAnyPrefix(s string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(s, p) })
}

// shares turns a map into shares of total, largest first (ties by name),
// keeping at most limit (0 = all).
func shares(m map[string]int64, total int64, limit int) []Share {
	out := make([]Share, 0, len(m))
	for name, v := range m {
		pct := 0.0
		if total > 0 {
			pct = 100 * float64(v) / float64(total)
		}
		out = append(out, Share{Name: name, CPU: time.Duration(v), Percent: pct})
	}
	slices.SortFunc(out, func(a, b Share) int {
		return cmp.Or(cmp.Compare(b.CPU, a.CPU), cmp.Compare(a.Name, b.Name))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}
