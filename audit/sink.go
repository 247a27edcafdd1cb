package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/chartguard/chartguard/chartguard"
)

// Sink is an extra destination for audit events, written after the file
// log. Failures are logged and counted, never fatal: the file log is the
// record of truth.
type Sink interface {
	Write(ctx context.Context, ev *chartguard.Event) error
}

// JSONSink writes each event as one JSON line (the file log's format) to an
// io.Writer. It is safe for concurrent use; lines are never interleaved.
type JSONSink struct {
	mu sync.Mutex
	w  io.Writer
}

var _ Sink = (*JSONSink)(nil)

// NewJSONSink returns a sink writing JSON lines to w.
func NewJSONSink(w io.Writer) *JSONSink {
	return &JSONSink{w: w}
}

// Write marshals ev and writes it with one Write call.
func (s *JSONSink) Write(_ context.Context, ev *chartguard.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("audit: marshal event: %w", err)
	}
	return s.writeLine(append(b, '\n'))
}

// writeLine writes one complete JSON line with one Write call.
func (s *JSONSink) writeLine(line []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(line); err != nil {
		return fmt.Errorf("audit: write sink: %w", err)
	}
	return nil
}

// namedSink carries the metric label of a sink.
type namedSink struct {
	name string
	sink Sink
}

func buildSinks(cfg []SinkConfig, stdout io.Writer) []namedSink {
	var out []namedSink
	for _, s := range cfg {
		if s.Type == SinkStdout { // Validate refused everything else
			out = append(out, namedSink{name: SinkStdout, sink: NewJSONSink(stdout)})
		}
	}
	return out
}
