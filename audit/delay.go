package audit

import "time"

const (
	// gatherTarget ends a commit delay early: with this many requests
	// pending, an fsync is already shared widely enough.
	gatherTarget = 32
	// peakWindow is how many batches the concurrency estimate remembers.
	peakWindow = 32
)

// commitDelay holds a durable batch open for more events before its write
// and fsync (Config.CommitDelay), like PostgreSQL's commit_delay. It is
// owned by the writer goroutine.
//
// It waits only on evidence of concurrent callers: the events its callers
// say are on their way (Config.Pending), or else the recent peak of
// concurrent commits (a batch's commits plus the requests that queued
// while it was written); and Commit calls about to hand over. A sequential
// caller never shows either, so it never waits. A wait ends as soon as the
// batch is as large as that peak (nobody else is expected), when
// gatherTarget requests are pending, or after the delay. A wait that
// brought nothing lowers the peak by one, so when load drops the waits
// stop after a few delays rather than after the window.
type commitDelay struct {
	delay time.Duration
	timer *time.Timer
	peak  [2]int // concurrency seen in the current and the previous window
	count int    // batches observed in the current window
}

func newCommitDelay(delay time.Duration) *commitDelay {
	t := time.NewTimer(delay)
	t.Stop()
	return &commitDelay{delay: delay, timer: t}
}

// gather waits for more requests to join batch when concurrent callers
// are expected, and returns the batch to write.
func (d *commitDelay) gather(l *Log, batch []*request) []*request {
	expect := max(d.peak[0], d.peak[1])
	if l.cfg.Pending != nil {
		expect = l.cfg.Pending()
	}
	want := min(gatherTarget, max(expect, len(batch)+int(l.arriving.Load())))
	if len(batch) == 0 || len(batch) >= want || !l.healthy.Load() {
		return batch
	}
	had := len(batch)
	d.timer.Reset(d.delay)
	defer d.timer.Stop()
	for len(batch) < want {
		select {
		case r := <-l.reqs:
			batch = drain(l.reqs, append(batch, r))
		case <-d.timer.C:
			batch = drain(l.reqs, batch)
			if len(batch) == had { // nobody came: expect fewer
				d.peak[0], d.peak[1] = max(d.peak[0]-1, 0), max(d.peak[1]-1, 0)
			}
			return batch
		case <-l.quit:
			return batch
		}
	}
	return batch
}

// observe records how many commits were concurrent in the last batch.
func (d *commitDelay) observe(concurrent int) {
	d.peak[0] = max(d.peak[0], concurrent)
	if d.count++; d.count == peakWindow {
		d.peak[0], d.peak[1], d.count = 0, d.peak[0], 0
	}
}
