package audit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
)

var (
	// ErrUnavailable means the file log cannot be written: the caller must
	// not serve patient data (fail closed).
	ErrUnavailable = errors.New("audit: log unavailable")
	// ErrClosed is returned after Close. It wraps ErrUnavailable.
	ErrClosed = fmt.Errorf("%w: closed", ErrUnavailable)
	// ErrCorrupt means the segments on disk are not what this log wrote
	// (unreadable last record, a segment that shrank or vanished). An
	// operator must look before the log continues.
	ErrCorrupt = errors.New("audit: segment corrupt")
	// ErrInvalidEvent means the event cannot be logged (nil or not
	// marshallable).
	ErrInvalidEvent = errors.New("audit: invalid event")
)

const (
	// maxBatch caps the requests one group commit takes from the channel.
	maxBatch = 1024
	// probeTimeout bounds Ready while the log is unhealthy.
	//
	// Security: Ready has no context and /readyz and the proxy call it; a
	// hung disk must not hang them. After probeTimeout Ready reports
	// unavailable. Accepted risk: a slow but working disk reads as not
	// ready until a probe finishes in time.
	probeTimeout = time.Second
)

// Log is the audit event writer. Its methods are safe for concurrent use.
type Log struct {
	cfg    Config
	logger *slog.Logger
	m      *metrics
	sinks  []namedSink
	now    func() time.Time
	ids    idSource

	// arriving counts Commit calls preparing their record, not yet handed
	// to the writer: a sign for the writer that more are about to come.
	arriving atomic.Int64
	reqPool  sync.Pool // of *request, reused once their result is read

	reqs    chan *request
	kick    chan struct{}
	quit    chan struct{}
	stopped chan struct{}
	healthy atomic.Bool
	closed  atomic.Bool
	once    sync.Once
	lastErr error // set by the writer before stopped is closed

	queue   recoveryQueue
	seg     *segmentWriter // owned by the writer goroutine
	chain   *chain         // owned by the writer goroutine
	scratch scratch        // owned by the writer goroutine

	verifier note.Verifier // of the checkpoint signer; set once by New
}

// New checks cfg, prepares the directory, finds where the log resumes and
// starts the writer. reg may be nil (metrics not registered).
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setNumericDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{
		cfg: cfg, logger: logger, now: cfg.Now, ids: idSource{r: cfg.Rand},
		reqs:    make(chan *request, maxBatch),
		kick:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.ids.r == nil {
		l.ids.r = rand.Reader
	}
	stdout := cfg.Stdout
	if stdout == nil {
		stdout = os.Stdout
	}
	l.sinks = buildSinks(cfg.Sinks, stdout)
	if err := prepareDir(cfg.Dir); err != nil {
		return nil, err
	}
	signer, verifier, err := loadSigner(cfg, logger)
	if err != nil {
		return nil, err
	}
	l.verifier = verifier
	tail, err := recoverTail(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if l.chain, err = openChain(cfg.Dir, tail.next, signer, verifier, cfg.origin()); err != nil {
		return nil, err
	}
	if l.m, err = newMetrics(reg, l.sinks, cfg.Dir, l.chain, l.now); err != nil {
		l.chain.close()
		return nil, err
	}
	l.queue.max, l.queue.gauge = cfg.QueueSize, l.m.queue
	l.seg = &segmentWriter{
		dir: cfg.Dir, maxBytes: cfg.Segment.MaxBytes, durable: cfg.Durable,
		open: cfg.OpenSegment, observe: func(d time.Duration) { l.m.fsync.Observe(d.Seconds()) },
		tail: tail, onTrim: func(n int64) {
			l.logger.Warn("audit segment trimmed to its last acknowledged record", "bytes", n)
		},
	}
	if l.seg.open == nil {
		l.seg.open = openSegmentFile
	}
	l.wireChain()
	if err := l.seg.ensureOpen(); err != nil {
		unregister(reg, l.m)
		l.chain.close()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// Records a crash left after the last checkpoint: sign what was
	// recovered, so verification covers them without waiting.
	l.chain.checkpointLogged()
	if err := l.chain.applyRetention(l.seg.tail.path); err != nil {
		l.logger.Error("audit retention failed", "err", err)
	}
	l.healthy.Store(true)
	go l.run()
	return l, nil
}

// prepareDir creates dir 0700 or checks that an existing one is private.
//
// Security: other local users must not read (PHI identifiers) or plant
// and rename (tamper) segments. We refuse rather than chmod: a wrong mode
// is a deployment mistake the operator should see.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("audit.dir: %w", err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("audit.dir: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("audit.dir: %s is not a directory", dir)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("audit.dir: %s has mode %#o, want 0700 (chmod 700 it)", dir, perm)
	}
	return nil
}

func unregister(reg prometheus.Registerer, m *metrics) {
	if reg == nil {
		return
	}
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}

// Commit logs ev and returns once it is in the file log (fsynced if
// Durable), then copies it to the extra sinks. It fills ev's envelope (v,
// id and time if empty, seq, node, count) and caps its patients.
//
// If the file cannot be written, Commit returns an error wrapping
// ErrUnavailable and keeps nothing (FailClosed), or defers ev and returns
// nil (not FailClosed). If ctx ends first, Commit returns its error; the
// event is then dropped if the writer has not taken it yet, else it may
// still be logged.
func (l *Log) Commit(ctx context.Context, ev *chartguard.Event) error {
	if ev == nil {
		return fmt.Errorf("%w: nil", ErrInvalidEvent)
	}
	if l.closed.Load() {
		return ErrClosed
	}
	l.arriving.Add(1)
	rec, err := l.prepare(ev)
	l.arriving.Add(-1) // before the handoff, so it never counts a request the writer holds
	if err != nil {
		return err
	}
	r := l.newRequest(rec)
	res, err := l.send(ctx, r)
	if err != nil {
		return err
	}
	r.rec = record{}
	l.reqPool.Put(r) // the writer is done with it: it sent the result
	if res.err != nil {
		if !l.cfg.FailClosed {
			l.Defer(ev)
			return nil
		}
		return res.err
	}
	ev.Seq = res.seq
	l.writeSinks(ctx, ev, rec)
	return nil
}

// newRequest returns a pending request for rec, reusing a pooled one.
func (l *Log) newRequest(rec record) *request {
	r, ok := l.reqPool.Get().(*request)
	if !ok {
		return &request{rec: rec, done: make(chan result, 1)}
	}
	r.rec = rec
	r.state.Store(pending)
	return r
}

// send hands r to the writer and waits for its result.
func (l *Log) send(ctx context.Context, r *request) (result, error) {
	select {
	case l.reqs <- r:
	case <-ctx.Done():
		return result{}, fmt.Errorf("audit: %w", ctx.Err())
	case <-l.quit:
		return result{}, ErrClosed
	}
	select {
	case res := <-r.done:
		return res, nil
	case <-ctx.Done():
		if r.abandon() {
			return result{}, fmt.Errorf("audit: %w", ctx.Err())
		}
		return result{}, fmt.Errorf("audit: event may still be logged: %w", ctx.Err())
	case <-l.stopped:
		select {
		case res := <-r.done:
			return res, nil
		default:
			return result{}, ErrClosed
		}
	}
}

// Defer hands ev to the extra sinks now and to the recovery queue, which
// the writer empties, in order and before anything newer, as soon as the
// file is writable. If the queue is full or the log closed, ev is dropped
// and counted in chartguard_audit_events_lost_total. In the sinks a
// deferred event has seq 0: it has no place in the file log yet.
func (l *Log) Defer(ev *chartguard.Event) {
	if ev == nil {
		return
	}
	rec, err := l.prepare(ev)
	if err != nil {
		l.m.lost.Inc()
		l.logger.Error("audit event dropped: cannot prepare it", "err", err)
		return
	}
	l.writeSinks(context.Background(), ev, rec)
	if !l.queue.push(rec) {
		l.m.lost.Inc()
		if l.queue.noteDrop() {
			l.logger.Error("audit recovery queue full or closed; dropping events", "queue_size", l.cfg.QueueSize)
		}
		return
	}
	if l.healthy.Load() { // nothing else may come along to flush it soon
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// Ready returns nil when the file log is writable. It costs one atomic load
// while healthy; after a failure it probes (flush the queue, or reopen and
// fsync the segment) and returns an error wrapping ErrUnavailable if that
// still fails.
func (l *Log) Ready() error {
	if l.closed.Load() {
		return ErrClosed
	}
	if l.healthy.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	res, err := l.send(ctx, &request{probe: true, done: make(chan result, 1)})
	if err != nil {
		return fmt.Errorf("%w: probe: %w", ErrUnavailable, err)
	}
	return res.err
}

// Close stops accepting events, writes what is pending (including the
// recovery queue, whose unwritable rest is counted lost), fsyncs and closes
// the segment. It is safe to call more than once.
func (l *Log) Close() error {
	l.once.Do(func() {
		l.closed.Store(true)
		close(l.quit)
	})
	<-l.stopped
	return l.lastErr
}

// writeSinks copies ev, logged as rec with ev.Seq, to the extra sinks. The
// JSON sink gets rec's line, which is what it would marshal.
func (l *Log) writeSinks(ctx context.Context, ev *chartguard.Event, rec record) {
	var line []byte
	for _, s := range l.sinks {
		var err error
		if js, ok := s.sink.(*JSONSink); ok {
			if line == nil {
				line = rec.appendWithSeq(nil, ev.Seq)
			}
			err = js.writeLine(line)
		} else {
			err = s.sink.Write(ctx, ev)
		}
		if err != nil {
			l.m.failed.WithLabelValues(s.name).Inc()
			l.logger.Error("audit sink write failed", "sink", s.name, "err", err)
			continue
		}
		l.m.written.WithLabelValues(s.name).Inc()
	}
}
