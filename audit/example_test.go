package audit_test

import (
	"context"
	"fmt"
	"golang.org/x/mod/sumdb/note"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chartguard/chartguard/audit"
	"github.com/chartguard/chartguard/chartguard"
)

func ExampleLog_Commit() {
	dir, err := os.MkdirTemp("", "audit-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	var cfg audit.Config
	cfg.SetDefaults() // durable, fail closed
	cfg.Dir = filepath.Join(dir, "audit")
	cfg.Node = "proxy-1"
	cfg.Origin = "emr.example.org/audit/proxy-1"
	// A real deployment sets SigningKeyFile (`chartguard audit keygen`).
	skey, _, err := audit.GenerateKey(cfg.Origin)
	if err != nil {
		fmt.Println(err)
		return
	}
	if cfg.Signer, err = note.NewSigner(skey); err != nil {
		fmt.Println(err)
		return
	}
	auditLog, err := audit.New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer auditLog.Close()

	for _, path := range []string{"/fhir/Patient/p1", "/fhir/Observation"} {
		ev := &chartguard.Event{Action: "read", Outcome: chartguard.OutcomeAllowed,
			Request: chartguard.EventRequest{Method: "GET", Path: path, Status: 200}}
		if err := auditLog.Commit(context.Background(), ev); err != nil {
			// Fail closed: answer 503, amend the event, defer it.
			ev.Request.Status, ev.Outcome = 503, chartguard.OutcomeError
			auditLog.Defer(ev)
			continue
		}
		fmt.Println(ev.Seq, ev.Node, ev.Request.Path)
	}
	// Output:
	// 0 proxy-1 /fhir/Patient/p1
	// 1 proxy-1 /fhir/Observation
}
