package audit

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// request is one Commit (rec set) or Ready probe (probe set).
type request struct {
	rec   record
	probe bool
	done  chan result // buffered: the writer never blocks on it
	state atomic.Int32
}

const (
	pending int32 = iota
	taken
	abandoned
)

// abandon withdraws a request whose caller gave up; false if the writer
// already took it.
func (r *request) abandon() bool { return r.state.CompareAndSwap(pending, abandoned) }

// take claims a request for a batch; false if its caller gave up.
func (r *request) take() bool { return r.state.CompareAndSwap(pending, taken) }

type result struct {
	seq uint64
	err error
}

// run is the single writer: it takes whatever is pending, writes it as one
// batch and answers every waiter (group commit).
func (l *Log) run() {
	defer close(l.stopped)
	batch := make([]*request, 0, maxBatch)
	var delay *commitDelay
	if l.cfg.Durable && l.cfg.CommitDelay > 0 {
		delay = newCommitDelay(l.cfg.CommitDelay)
	}
	tick := time.NewTicker(l.cfg.CheckpointInterval)
	defer tick.Stop()
	for {
		batch = batch[:0]
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		case <-l.kick:
		case <-tick.C:
			l.chain.request()
			continue
		case <-l.quit:
			l.shutdown()
			return
		}
		batch = drain(l.reqs, batch)
		if delay != nil {
			batch = delay.gather(l, batch)
		}
		concurrent := l.process(batch)
		if delay != nil {
			delay.observe(concurrent)
		}
	}
}

// drain adds what is already waiting, up to maxBatch, without blocking.
func drain(reqs chan *request, batch []*request) []*request {
	for len(batch) < maxBatch {
		select {
		case r := <-reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// process writes the recovery queue and then the batch's records in one
// append and answers the batch. It returns how many commits were
// concurrent: the batch's, and those that queued while it was written
// (counted before answering, so a sequential caller's next commit cannot
// be among them).
func (l *Log) process(batch []*request) int {
	queued := l.queue.take()
	sc := &l.scratch
	defer sc.reset()
	sc.recs = append(sc.recs, queued...)
	for _, r := range batch {
		switch {
		case r.probe:
			sc.probes = append(sc.probes, r)
		case r.take():
			sc.commits = append(sc.commits, r)
			sc.recs = append(sc.recs, r.rec)
		}
	}
	recs, commits := sc.recs, sc.commits
	if len(recs) == 0 && len(sc.probes) == 0 {
		return 0
	}
	first := l.seg.tail.next
	var n int
	var err error
	switch err = l.chain.catchUp(l.seg.tail.next); {
	case err != nil:
	case len(recs) > 0:
		n, err = l.seg.append(recs)
		l.chain.afterBatch()
	default:
		err = l.seg.probe()
	}
	concurrent := len(commits) + len(l.reqs)
	l.queue.settle(queued, min(n, len(queued)))
	l.m.written.WithLabelValues(sinkFile).Add(float64(n))
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		l.m.failed.WithLabelValues(sinkFile).Add(float64(len(recs) - n))
		l.markUnhealthy(err)
	} else {
		l.markHealthy()
	}
	for i, r := range commits {
		if j := len(queued) + i; j < n {
			r.done <- result{seq: first + uint64(j)}
		} else {
			r.done <- result{err: err}
		}
	}
	for _, r := range sc.probes {
		r.done <- result{err: err}
	}
	return concurrent
}

// scratch holds the writer's per-batch slices so a batch allocates nothing.
type scratch struct {
	recs    []record
	commits []*request
	probes  []*request
}

// reset empties the slices, dropping their references, and keeps their
// arrays unless a recovery flush made recs large.
func (sc *scratch) reset() {
	clear(sc.recs)
	clear(sc.commits)
	clear(sc.probes)
	if cap(sc.recs) > 4*maxBatch {
		sc.recs = nil
	}
	sc.recs, sc.commits, sc.probes = sc.recs[:0], sc.commits[:0], sc.probes[:0]
}

func (l *Log) markUnhealthy(err error) {
	if l.healthy.Swap(false) {
		l.logger.Error("audit log write failed; unavailable until it recovers",
			"sink", sinkFile, "err", err, "fail_closed", l.cfg.FailClosed)
		return
	}
	l.logger.Debug("audit log still unavailable", "err", err)
}

func (l *Log) markHealthy() {
	if !l.healthy.Swap(true) {
		l.logger.Info("audit log writable again")
	}
}

// shutdown answers what is pending, makes a last attempt at the recovery
// queue, counts what remains as lost and closes the segment.
func (l *Log) shutdown() {
	for {
		batch := drain(l.reqs, nil)
		if len(batch) == 0 {
			break
		}
		l.process(batch)
	}
	l.queue.close()
	l.process(nil)
	if lost := l.queue.discard(); lost > 0 {
		l.m.lost.Add(float64(lost))
		l.logger.Error("audit events lost at close", "events", lost)
	}
	if err := l.seg.close(); err != nil {
		l.lastErr = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if err := l.chain.checkpoint(); err != nil {
		l.m.cpFailed.Inc()
		l.logger.Error("audit final checkpoint failed", "err", err)
		l.lastErr = errors.Join(l.lastErr, fmt.Errorf("audit: final checkpoint: %w", err))
	}
	l.chain.close()
}

// recoveryQueue holds deferred records. The writer takes them all at the
// start of a batch and puts back what it could not write, so the bound
// counts taken records too. The gauge is set under the lock so it never
// shows a stale length.
type recoveryQueue struct {
	mu       sync.Mutex
	max      int
	gauge    prometheus.Gauge
	recs     []record
	inflight int
	closed   bool
	dropping bool
}

// push appends rec; false if the queue is full or closed.
func (q *recoveryQueue) push(rec record) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.recs)+q.inflight >= q.max {
		return false
	}
	q.dropping = false
	q.recs = append(q.recs, rec)
	q.publish()
	return true
}

// noteDrop reports whether this drop starts a run of drops (log once).
func (q *recoveryQueue) noteDrop() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	first := !q.dropping
	q.dropping = true
	return first
}

func (q *recoveryQueue) take() []record {
	q.mu.Lock()
	defer q.mu.Unlock()
	recs := q.recs
	q.recs, q.inflight = nil, len(recs)
	return recs
}

// settle puts taken[written:] back in front of anything deferred since.
func (q *recoveryQueue) settle(taken []record, written int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if rest := taken[written:]; len(rest) > 0 {
		q.recs = append(rest[:len(rest):len(rest)], q.recs...)
	}
	q.inflight = 0
	q.publish()
}

// publish sets the gauge; q.mu must be held.
func (q *recoveryQueue) publish() { q.gauge.Set(float64(len(q.recs) + q.inflight)) }

func (q *recoveryQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
}

// discard empties the queue and returns how many records it held.
func (q *recoveryQueue) discard() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.recs)
	q.recs = nil
	q.publish()
	return n
}
