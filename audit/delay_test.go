package audit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// delayedLog is a durable log with the given commit delay whose Sync calls
// fl counts.
func delayedLog(t *testing.T, delay time.Duration) (*Log, *faults, Config) {
	t.Helper()
	cfg := testConfig(t)
	cfg.CommitDelay = delay
	fl := &faults{}
	cfg.OpenSegment = fl.open
	l, _ := newLog(t, cfg)
	return l, fl, cfg
}

// commitWithin commits with a deadline far below any delay under test, so
// a Commit stuck in a commit delay fails instead of hanging.
func commitWithin(t *testing.T, l *Log, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, l.Commit(ctx, event(path)))
}

func TestCommitDelaySequentialCallerNeverWaits(t *testing.T) {
	l, fl, cfg := delayedLog(t, time.Hour)
	const n = 20
	for i := range n {
		commitWithin(t, l, fmt.Sprint(i))
	}
	assert.Equal(t, int64(n), fl.syncs.Load(), "one fsync per sequential commit, none delayed")
	assert.Equal(t, denseSeqs(0, n), seqs(readLog(t, cfg.Dir)))
}

// startConcurrency makes the writer see two concurrent commits: it holds
// the fsync of /a until /b has queued behind it, then lets both through.
// It returns once the writer has taken /b; /b's result arrives on the
// returned channel.
func startConcurrency(t *testing.T, l *Log, fl *faults) <-chan error {
	t.Helper()
	release := make(chan struct{})
	var once sync.Once
	fl.setSyncHook(func() { once.Do(func() { <-release }) })
	a, b := make(chan error, 1), make(chan error, 1)
	go func() { a <- l.Commit(context.Background(), event("/a")) }()
	waitFor(t, func() bool { return fl.syncs.Load() == 1 })
	go func() { b <- l.Commit(context.Background(), event("/b")) }()
	waitFor(t, func() bool { return len(l.reqs) == 1 })
	close(release)
	require.NoError(t, <-a)
	waitFor(t, func() bool { return len(l.reqs) == 0 })
	return b
}

func TestCommitDelayGathersConcurrentCommits(t *testing.T) {
	l, fl, cfg := delayedLog(t, time.Hour)
	b := startConcurrency(t, l, fl)

	assert.Never(t, func() bool { return fl.syncs.Load() > 1 }, 50*time.Millisecond, time.Millisecond,
		"/b waits for the commit its concurrency predicts")
	commitWithin(t, l, "/c")
	require.NoError(t, <-b)
	assert.Equal(t, int64(2), fl.syncs.Load(), "/b and /c share one fsync")
	assert.Equal(t, []string{"/a", "/b", "/c"}, paths(readLog(t, cfg.Dir)))
}

func TestCommitDelayIsBounded(t *testing.T) {
	const delay = 300 * time.Millisecond
	l, fl, cfg := delayedLog(t, delay)
	start := time.Now()
	b := startConcurrency(t, l, fl)

	require.NoError(t, <-b, "nobody joins: /b is written when the delay ends")
	assert.GreaterOrEqual(t, time.Since(start), delay)
	assert.Equal(t, int64(2), fl.syncs.Load())

	start = time.Now()
	commitWithin(t, l, "/c")
	assert.Less(t, time.Since(start), delay, "a fruitless wait forgets the concurrency")
	assert.Equal(t, []string{"/a", "/b", "/c"}, paths(readLog(t, cfg.Dir)))
}

func TestCommitDelayConcurrentCallersShareFsyncs(t *testing.T) {
	l, fl, cfg := delayedLog(t, 20*time.Millisecond)
	const callers, each = 4, 25

	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				assert.NoError(t, l.Commit(context.Background(), event(fmt.Sprintf("/%d/%d", c, i))))
			}
		})
	}
	wg.Wait()

	// Without a delay, callers in a tight loop alternate between batches
	// and share an fsync about two by two.
	assert.Less(t, fl.syncs.Load(), int64(callers*each/2), "fsyncs shared by the callers")
	assert.Equal(t, denseSeqs(0, callers*each), seqs(readLog(t, cfg.Dir)))
}

func TestCommitDelayOnlyWhenDurable(t *testing.T) {
	cfg := testConfig(t)
	cfg.Durable = false
	cfg.CommitDelay = time.Hour
	l, _ := newLog(t, cfg)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			assert.NoError(t, l.Commit(ctx, event(fmt.Sprint(i))))
		})
	}
	wg.Wait()
	assert.Len(t, readLog(t, cfg.Dir), 8)
}

// TestCommitDelayWaitsForPending: with Config.Pending the writer waits for
// as many events as its callers say are on their way, and not for more.
func TestCommitDelayWaitsForPending(t *testing.T) {
	cfg := testConfig(t)
	cfg.CommitDelay = time.Hour
	var pending atomic.Int64
	cfg.Pending = func() int { return int(pending.Load()) }
	fl := &faults{}
	cfg.OpenSegment = fl.open
	l, _ := newLog(t, cfg)

	// One request in progress: it never waits, however long the delay.
	pending.Store(1)
	commitWithin(t, l, "/alone")
	assert.Equal(t, int64(1), fl.syncs.Load())

	// Three in progress: the first waits until the other two have come.
	pending.Store(3)
	a := make(chan error, 1)
	go func() { a <- l.Commit(context.Background(), event("/a")) }()
	assert.Never(t, func() bool { return len(a) > 0 }, 50*time.Millisecond, time.Millisecond,
		"/a waits for the events its callers announced")
	var wg sync.WaitGroup
	for _, p := range []string{"/b", "/c"} {
		wg.Go(func() { commitWithin(t, l, p) })
	}
	wg.Wait()
	require.NoError(t, <-a)
	assert.Equal(t, int64(2), fl.syncs.Load(), "/a, /b and /c share one fsync")
	assert.ElementsMatch(t, []string{"/alone", "/a", "/b", "/c"}, paths(readLog(t, cfg.Dir)))
}
