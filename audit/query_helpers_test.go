package audit

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/chartguard/chartguard/chartguard"
)

// testKeys is a checkpoint key pair for a node.
type testKeys struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string // the verifier key text
}

func newTestKeys(tb testing.TB, name string) testKeys {
	tb.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	require.NoError(tb, err)
	s, err := note.NewSigner(skey)
	require.NoError(tb, err)
	v, err := note.NewVerifier(vkey)
	require.NoError(tb, err)
	return testKeys{s, v, vkey}
}

// writeTestLog appends events to the log in dir through a real Log (so
// records, tree and checkpoints are the production ones) and closes it,
// which signs a final checkpoint.
func writeTestLog(tb testing.TB, dir, node string, k testKeys, events []chartguard.Event) {
	tb.Helper()
	if _, err := os.Stat(dir); err == nil {
		require.NoError(tb, os.Chmod(dir, 0o700))
	}
	cfg := Config{Dir: dir, Node: node, Signer: k.signer, Stdout: io.Discard, Origin: "test/audit/" + node}
	cfg.SetDefaults()
	cfg.Durable = false
	cfg.MinFree = 0
	cfg.Retention = ""
	l, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	require.NoError(tb, err)
	for i := range events {
		require.NoError(tb, l.Commit(context.Background(), &events[i]))
	}
	require.NoError(tb, l.Close())
}

// access is a FHIR read of typ by user sub touching patients at t.
func access(t time.Time, sub, typ, action string, patients ...string) chartguard.Event {
	return chartguard.Event{
		Time: t.UTC().Format(time.RFC3339Nano), Action: action, Outcome: chartguard.OutcomeAllowed,
		User:     &chartguard.EventUser{Issuer: "https://idp", Subject: sub, Name: "Dr " + sub, Roles: []string{"physician"}},
		Request:  chartguard.EventRequest{ID: "req-000000", Method: "GET", Path: "/fhir/" + typ + "?patient=" + joinIDs(patients), Status: 200},
		Resource: &chartguard.EventResource{Kind: chartguard.KindFHIR, Interaction: action, Type: typ, Patients: patients, PatientStatus: chartguard.PatientsKnown},
		Decision: &chartguard.EventDecision{ID: "d", Revision: "r", Reasons: []string{"care team of " + joinIDs(patients)}, PurposeOfUse: "TREAT"},
		Count:    1,
	}
}

func joinIDs(ps []string) string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += ","
		}
		s += p
	}
	return s
}

func collect(tb testing.TB, s *Searcher, q Query) []Match {
	tb.Helper()
	var out []Match
	for m, err := range s.Search(context.Background(), q) {
		require.NoError(tb, err)
		out = append(out, m)
	}
	return out
}
