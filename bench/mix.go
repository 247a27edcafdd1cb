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

// clinician is one minted token and the patients on whose care team its
// practitioner is: the default policy lets a clinician see only those.
type clinician struct {
	token    string
	patients []string
}

// buildMix rotates over clinicians and their patients: reads of
// Patient/{id} and, one in five, searches Observation?patient={id}.
// Consecutive entries use different tokens and patients, so neither a token
// cache line nor one patient's data stays hot by accident. Its length is a
// multiple of the clinicians, so each token is used equally often.
func buildMix(clinicians []clinician) ([]Request, error) {
	if len(clinicians) == 0 {
		return nil, errors.New("bench: mix needs at least one token")
	}
	n := len(clinicians) * searchEvery
	mix := make([]Request, n)
	for i := range mix {
		c := clinicians[i%len(clinicians)]
		if len(c.patients) == 0 {
			return nil, errors.New("bench: a clinician with no patients")
		}
		round := i / len(clinicians)
		pid := c.patients[(round*7+i)%len(c.patients)]
		path := "/fhir/Patient/" + pid
		if (i+round)%searchEvery == searchEvery-1 {
			path = "/fhir/Observation?patient=" + pid
		}
		mix[i] = Request{Path: path, Authorization: "Bearer " + c.token}
	}
	return mix, nil
}

// mintTokens mints n tokens with distinct subjects, for practitioners
// pr1…pr10 in turn (pr1–pr6 physicians, pr7–pr10 nurses, as in the demo
// EMR), each with the patients of its care teams. Practitioners with no
// patients are skipped. It signs on every core.
func mintTokens(ctx context.Context, iss *devissuer.Issuer, n int, panels map[string][]string) ([]clinician, error) {
	var pracs []string
	for k := 1; k <= 10; k++ {
		if len(panels[fmt.Sprintf("Practitioner/pr%d", k)]) > 0 {
			pracs = append(pracs, fmt.Sprintf("Practitioner/pr%d", k))
		}
	}
	if len(pracs) == 0 {
		return nil, errors.New("bench: no practitioner is on a care team")
	}
	out := make([]clinician, n)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for i := w; i < n; i += len(errs) {
				if ctx.Err() != nil {
					errs[w] = ctx.Err()
					return
				}
				prac := pracs[i%len(pracs)]
				role := "physician"
				var k int
				if _, err := fmt.Sscanf(prac, "Practitioner/pr%d", &k); err == nil && k > 6 {
					role = "nurse"
				}
				tok, err := iss.Token(devissuer.TokenRequest{
					Role: role, Subject: fmt.Sprintf("bench-%s-%05d", role, i), FHIRUser: prac,
				})
				if err != nil {
					errs[w] = fmt.Errorf("bench: mint token: %w", err)
					return
				}
				out[i] = clinician{token: tok, patients: panels[prac]}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
