package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
)

// Errors of [getAsService] other than the transport's.
var (
	errNotFHIRJSON    = errors.New("answer is not FHIR JSON")
	errAnswerTooLarge = errors.New("answer too large")
)

// getAsService sends GET u to the EMR with client, ChartGuard's own
// upstream client (its TLS and service identity), for a lookup the
// response check or the policy input needs. It returns the body of a 200
// answer that is FHIR JSON of at most max bytes, or the status of any
// other answer (its body drained up to max). Prefer: handling=strict asks
// the EMR to refuse a search parameter it does not know rather than
// ignore it, which would widen the answer.
//
// Security: a transport error is returned as the client gave it, and its
// text holds u, which names patients: callers classify it (errorClass),
// never log it.
func getAsService(ctx context.Context, client *http.Client, requestID, u string, max int64) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("Prefer", "handling=strict")
	req.Header.Set("X-Request-Id", requestID)
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, max))
		return nil, resp.StatusCode, nil
	}
	if !isFHIRJSON(resp.Header.Get("Content-Type")) {
		return nil, 0, errNotFHIRJSON
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	switch {
	case err != nil:
		return nil, 0, err
	case int64(len(body)) > max:
		return nil, 0, errAnswerTooLarge
	}
	return body, resp.StatusCode, nil
}
