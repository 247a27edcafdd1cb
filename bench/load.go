package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults and bounds of a load phase.
const (
	DefaultConcurrency = 32
	DefaultMaxRequests = 2_000_000
	requestTimeout     = 30 * time.Second
)

// Errors of the load generator.
var (
	// ErrNotLoopback refuses targets that are not a loopback IP address:
	// the generator is for this machine only.
	ErrNotLoopback = errors.New("bench: target must be http://127.0.0.1 or another loopback IP")
	// ErrFailedRun marks a run in which some response was not 200.
	ErrFailedRun = errors.New("bench: failed run")
)

// Loader drives one target with a closed loop of workers sharing one
// keep-alive client. Successive runs continue where the previous one left
// the mix and reuse its connections, so a warm-up run really warms up.
type Loader struct {
	target      Target
	mix         []Request
	concurrency int
	client      *http.Client
	next        atomic.Uint64 // index of the next mix entry
}

// NewLoader checks that t is on loopback and builds its client.
// concurrency is the number of workers; if zero, 32.
func NewLoader(t Target, mix []Request, concurrency int) (*Loader, error) {
	if err := checkLoopback(t.URL); err != nil {
		return nil, err
	}
	if len(mix) == 0 {
		return nil, errors.New("bench: empty request mix")
	}
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if err := checkLoopbackAddr(addr); err != nil {
				return nil, err
			}
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		MaxConnsPerHost:     concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	client := &http.Client{
		Transport:     tr,
		Timeout:       requestTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Loader{target: t, mix: mix, concurrency: concurrency, client: client}, nil
}

// Close drops the loader's idle connections.
func (l *Loader) Close() { l.client.CloseIdleConnections() }

// Run sends requests until duration has passed or maxRequests were sent
// (if zero, 2,000,000), whichever comes first; in-flight requests finish.
// It returns an error only if ctx ends; failed responses are counted in
// the Result (see [Result.Err]).
func (l *Loader) Run(ctx context.Context, duration time.Duration, maxRequests int) (Result, error) {
	if maxRequests <= 0 {
		maxRequests = DefaultMaxRequests
	}
	var (
		issued  atomic.Int64
		mu      sync.Mutex
		res     = Result{Target: l.target.Name}
		wg      sync.WaitGroup
		cpu0    = processCPU()
		busy0   = machineBusy()
		start   = time.Now()
		stopAt  = start.Add(duration)
		perWork = maxRequests/l.concurrency + 1
	)
	pprof.Do(ctx, pprof.Labels(LabelKey, CompLoad), func(ctx context.Context) {
		for range l.concurrency {
			wg.Go(func() {
				w := worker{l: l, lat: make([]time.Duration, 0, min(perWork, 4096))}
				w.loop(ctx, &issued, int64(maxRequests), stopAt)
				mu.Lock()
				res.add(w)
				mu.Unlock()
			})
		}
	})
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.CPU = processCPU() - cpu0
	if busy0 >= 0 {
		res.OtherCPU = max(machineBusy()-busy0-res.CPU, 0)
		res.cpus = runtime.NumCPU()
	}
	slices.Sort(res.latencies)
	return res, ctx.Err()
}

type worker struct {
	l        *Loader
	lat      []time.Duration
	errors   int
	firstErr string
}

func (w *worker) loop(ctx context.Context, issued *atomic.Int64, limit int64, stopAt time.Time) {
	for ctx.Err() == nil && issued.Add(1) <= limit && time.Now().Before(stopAt) {
		req := w.l.mix[(w.l.next.Add(1)-1)%uint64(len(w.l.mix))]
		t0 := time.Now()
		err := w.l.do(ctx, req)
		d := time.Since(t0)
		if err != nil {
			w.errors++
			if w.firstErr == "" {
				w.firstErr = err.Error()
			}
			continue
		}
		w.lat = append(w.lat, d)
	}
}

// do sends one request and reads the whole body; anything but a 200 with
// a complete body is an error.
func (l *Loader) do(ctx context.Context, r Request) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.target.URL+r.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", r.Authorization)
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := l.client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %d", req.Method, resourceType(r.Path), resp.StatusCode)
	}
	return err
}

// resourceType keeps ids out of error messages: "/fhir/Patient/p1" and
// "/fhir/Patient?x" both give "/fhir/Patient".
func resourceType(p string) string {
	rest, _ := strings.CutPrefix(p, "/fhir/")
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	return "/fhir/" + rest
}

// Result is what one run of one target measured.
type Result struct {
	Target     string
	Requests   int           // answered 200 with a complete body
	Errors     int           // anything else
	FirstError string        // the first error seen, if any
	Elapsed    time.Duration // wall time of the run
	CPU        time.Duration // process CPU (user+system) during the run; 0 if unknown
	// OtherCPU is the CPU time other processes on the machine used during
	// the run (Linux only; 0 if unknown). On a shared machine it explains
	// noisy numbers.
	OtherCPU  time.Duration
	cpus      int // CPUs OtherCPU was shared out of; 0 if unknown
	latencies []time.Duration
}

func (r *Result) add(w worker) {
	r.Requests += len(w.lat)
	r.Errors += w.errors
	if r.FirstError == "" {
		r.FirstError = w.firstErr
	}
	r.latencies = append(r.latencies, w.lat...)
}

// Merge adds other (a later run of the same target) to r.
func (r *Result) Merge(other Result) {
	r.Requests += other.Requests
	r.Errors += other.Errors
	if r.FirstError == "" {
		r.FirstError = other.FirstError
	}
	r.Elapsed += other.Elapsed
	r.CPU += other.CPU
	r.OtherCPU += other.OtherCPU
	r.cpus = max(r.cpus, other.cpus)
	r.latencies = append(r.latencies, other.latencies...)
	slices.Sort(r.latencies)
}

// Err is nil for a clean run and wraps [ErrFailedRun] otherwise.
func (r Result) Err() error {
	if r.Errors == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s: %d of %d requests failed, first: %s", ErrFailedRun, r.Target,
		r.Errors, r.Errors+r.Requests, r.FirstError)
}

// Throughput is successful requests per second of wall time.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// CPUPerRequest is process CPU time per successful request (the whole
// process: load generator and upstream included).
func (r Result) CPUPerRequest() time.Duration {
	if r.Requests == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Requests)
}

// OtherLoad is the share of the machine's CPU capacity other processes
// used during the run (0 to 1), or -1 if unknown.
func (r Result) OtherLoad() float64 {
	if r.cpus == 0 || r.Elapsed <= 0 {
		return -1
	}
	return min(r.OtherCPU.Seconds()/(r.Elapsed.Seconds()*float64(r.cpus)), 1)
}

// Percentile returns the nearest-rank q-quantile (0 < q <= 1) of the
// latencies of successful requests, or 0 if there are none.
func (r Result) Percentile(q float64) time.Duration {
	n := len(r.latencies)
	if n == 0 || q <= 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(n))) - 1
	return r.latencies[min(max(i, 0), n-1)]
}

func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Path != "" || u.RawQuery != "" {
		return fmt.Errorf("%w: %q is not http://host:port", ErrNotLoopback, raw)
	}
	return checkLoopbackAddr(u.Host)
}

func checkLoopbackAddr(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotLoopback, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return fmt.Errorf("%w: %q", ErrNotLoopback, host)
	}
	return nil
}
