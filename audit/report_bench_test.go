package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

// The patient access report benchmark needs a large log, so it runs only
// when asked:
//
//	CHARTGUARD_BENCH_EVENTS=10000000 CHARTGUARD_BENCH_DIR=/var/tmp/cgbench \
//	  go test -run '^$' -bench BenchmarkPatientReport -benchtime 5x ./audit/
//
// The fixture (log, keys, index) is built once into CHARTGUARD_BENCH_DIR
// and reused: N events over 3 years, 100k patients drawn Zipf(s = 1.1),
// one event in ten a search listing 2-5 patients; the queried patient is
// the one whose event count is closest to 5000 * N/10M (1k-10k at 10M).
// Each iteration is a cold query: open the index, check it against the
// latest checkpoint, stream the 3-year CSV report to the last line.

const benchPatients = 100_000

type benchMeta struct {
	Events   int    `json:"events"`
	Patient  string `json:"patient"`
	Count    int    `json:"count"`
	Verifier string `json:"verifier"`
}

func BenchmarkPatientReport(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("CHARTGUARD_BENCH_EVENTS"))
	if n <= 0 {
		b.Skip("set CHARTGUARD_BENCH_EVENTS (and CHARTGUARD_BENCH_DIR to keep the fixture)")
	}
	root := os.Getenv("CHARTGUARD_BENCH_DIR")
	if root == "" {
		root = b.TempDir()
	}
	meta := benchFixture(b, root, n)
	v, err := note.NewVerifier(meta.Verifier)
	require.NoError(b, err)
	srcs := []Source{{Dir: filepath.Join(root, "log"), Verifier: v}}
	idx := filepath.Join(root, "index")
	start := time.Now()
	s, err := OpenSearcher(context.Background(), idx, srcs) // builds the index if absent
	require.NoError(b, err)
	require.NoError(b, s.Close())
	b.Logf("index ready in %s (events %d, patient %s with %d events)", time.Since(start), meta.Events, meta.Patient, meta.Count)

	from := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(3, 0, 0)
	b.ReportAllocs()
	for b.Loop() {
		s, err := OpenSearcher(context.Background(), idx, srcs)
		require.NoError(b, err)
		var w countingWriter
		err = WriteReport(context.Background(), &w, s, ReportRequest{Patient: meta.Patient, From: from, To: to, Format: ReportCSV})
		require.NoError(b, err)
		require.NoError(b, s.Close())
		require.Equal(b, meta.Count+2, w.lines, "header + rows + checkpoint")
	}
	b.ReportMetric(float64(meta.Count), "rows")
}

type countingWriter struct{ lines int }

func (w *countingWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		if c == '\n' {
			w.lines++
		}
	}
	return len(p), nil
}

// benchFixture builds (once) a signed log of n events in root/log.
func benchFixture(tb testing.TB, root string, n int) benchMeta {
	metaFile := filepath.Join(root, "meta.json")
	if b, err := os.ReadFile(metaFile); err == nil {
		var m benchMeta
		require.NoError(tb, json.Unmarshal(b, &m))
		require.Equal(tb, n, m.Events, "%s holds another fixture; remove it", root)
		return m
	}
	require.NoError(tb, os.MkdirAll(root, 0o700))
	k := newTestKeys(tb, "bench")
	skeyVerifier := k.vkey
	cfg := Config{Dir: filepath.Join(root, "log"), Node: "n1", Signer: k.signer, Stdout: io.Discard, Origin: "bench/audit/n1"}
	cfg.SetDefaults()
	cfg.Durable, cfg.MinFree, cfg.Retention = false, 0, ""
	l, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(tb, err)
	rng := rand.New(rand.NewPCG(11, 7))
	zipf := rand.NewZipf(rand.New(rand.NewPCG(3, 5)), 1.1, 1, benchPatients-1)
	counts := make([]int, benchPatients)
	start := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	step := start.AddDate(3, 0, 0).Sub(start) / time.Duration(n)
	types := []string{"Observation", "Condition", "MedicationRequest", "Encounter", "DocumentReference", "Patient"}
	for i := range n {
		k := 1
		if rng.IntN(10) == 0 {
			k = 2 + rng.IntN(4)
		}
		ps := make([]string, 0, k)
		for range k {
			r := int(zipf.Uint64())
			p := fmt.Sprintf("pat%06d", r)
			if !containsStr(ps, p) {
				ps = append(ps, p)
				counts[r]++
			}
		}
		action := "read"
		if k > 1 {
			action = "search-type"
		}
		ev := access(start.Add(time.Duration(i)*step), fmt.Sprintf("user%04d", rng.IntN(5000)), types[rng.IntN(len(types))], action, ps...)
		require.NoError(tb, l.Commit(context.Background(), &ev))
	}
	require.NoError(tb, l.Close())
	want := 5000 * n / 10_000_000
	best := 0
	for r, c := range counts {
		if abs(c-want) < abs(counts[best]-want) {
			best = r
		}
	}
	m := benchMeta{Events: n, Patient: fmt.Sprintf("pat%06d", best), Count: counts[best], Verifier: skeyVerifier}
	b, err := json.Marshal(m)
	require.NoError(tb, err)
	require.NoError(tb, os.WriteFile(metaFile, b, 0o600))
	require.NoError(tb, os.WriteFile(filepath.Join(root, "verifier.pub"), []byte(skeyVerifier+"\n"), 0o600))
	return m
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
