package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/chartguard/chartguard/examples/fhir-demo/devissuer"
)

// Request is one entry of the mix: a path (with query) below the target
// URL and the Authorization header to send. Every target gets the same
// header; only ChartGuard reads it.
type Request struct {
	Path          string
	Authorization string
}

// searchEvery makes one request in searchEvery a search (the rest are
// reads): an 80/20 mix.
const searchEvery = 5

// buildMix rotates over tokens and patients: reads of Patient/{id} and, one
// in five, searches Observation?patient={id}. Consecutive entries use
// different tokens and patients, so neither a token cache line nor one
// patient's data stays hot by accident. Its length is a multiple of both
// lists, so each token is used equally often.
func buildMix(tokens, patients []string) ([]Request, error) {
	if len(tokens) == 0 || len(patients) == 0 {
		return nil, errors.New("bench: mix needs at least one token and one patient")
	}
	n := len(tokens) * searchEvery
	mix := make([]Request, n)
	for i := range mix {
		tok := tokens[i%len(tokens)]
		pid := patients[(i*13)%len(patients)]
		path := "/fhir/Patient/" + pid
		if (i+i/len(tokens))%searchEvery == searchEvery-1 {
			path = "/fhir/Observation?patient=" + pid
		}
		mix[i] = Request{Path: path, Authorization: "Bearer " + tok}
	}
	return mix, nil
}

// mintTokens mints n physician tokens with distinct subjects, signing on
// every core.
func mintTokens(ctx context.Context, iss *devissuer.Issuer, n int) ([]string, error) {
	tokens := make([]string, n)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for i := w; i < n; i += len(errs) {
				if ctx.Err() != nil {
					errs[w] = ctx.Err()
					return
				}
				tok, err := iss.Token(devissuer.TokenRequest{
					Role: "physician", Subject: fmt.Sprintf("bench-physician-%05d", i),
					FHIRUser: "Practitioner/pr1",
				})
				if err != nil {
					errs[w] = fmt.Errorf("bench: mint token: %w", err)
					return
				}
				tokens[i] = tok
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return tokens, nil
}
