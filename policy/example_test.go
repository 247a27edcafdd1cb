package policy_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/policy"
)

func Example() {
	ctx := context.Background()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg := policy.Config{Dir: "../configs/policy", EvalTimeout: time.Second}
	engine, err := policy.New(ctx, cfg, logger)
	if err != nil {
		log.Fatal(err)
	}

	in := &chartguard.Input{
		User:    chartguard.Identity{Issuer: "https://idp.example.org", Subject: "u1", Roles: []string{"nurse"}},
		Token:   chartguard.Token{Kind: chartguard.TokenSession},
		Request: chartguard.Request{Method: "DELETE", Path: "/fhir/Observation/o1", Time: time.Now()},
		Resource: chartguard.Resource{
			Kind: chartguard.KindFHIR, Phase: chartguard.PhaseRequest, Type: "Observation", ID: "o1",
			Patients: []string{"p1"}, PatientStatus: chartguard.PatientsKnown,
			Action: "delete", Interaction: "delete",
		},
	}
	d, err := engine.Decide(ctx, in)
	if err != nil {
		// d denies; err says why the policy gave no decision.
		log.Print(err)
	}
	fmt.Println(d.Allow, d.Reasons)
	// Output: false [role nurse may not delete Observation]
}

func ExampleRunTests() {
	results, err := policy.RunTests(context.Background(), "../configs/policy")
	if err != nil {
		log.Fatal(err)
	}
	failed := 0
	for _, r := range results {
		if r.Outcome != policy.TestPass {
			failed++
			fmt.Println(r)
		}
	}
	fmt.Println("failed:", failed)
	// Output: failed: 0
}
