package audit

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// origin is the checkpoint origin line.
func (c Config) origin() string {
	if c.Origin != "" {
		return c.Origin
	}
	node := c.Node
	if node == "" {
		node = "node"
	}
	return "localhost/audit/" + node
}

// loadSigner returns the checkpoint signer: cfg.Signer, the key in
// SigningKeyFile or, if EphemeralKey allows it, a throwaway key; and the
// verifier of its checkpoints (nil for cfg.Signer, whose key is not known).
//
// Security: an ephemeral key dies with the process, so nobody can verify
// this log's checkpoints afterwards; the proxy allows it only for loopback
// demos (session.insecure_dev) and it is logged at error level.
func loadSigner(cfg Config, logger *slog.Logger) (note.Signer, note.Verifier, error) {
	switch {
	case cfg.Signer != nil:
		return cfg.Signer, nil, nil
	case cfg.SigningKeyFile != "":
		b, err := os.ReadFile(cfg.SigningKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("audit.signing_key_file: %w", err)
		}
		s, v, err := signerAndVerifier(string(b))
		if err != nil {
			return nil, nil, fmt.Errorf("audit.signing_key_file: %s does not hold a note signer key "+
				"(create one with `chartguard audit keygen`): %w", cfg.SigningKeyFile, err)
		}
		return s, v, nil
	case cfg.EphemeralKey:
		skey, _, err := GenerateKey(keyName(cfg.origin()))
		if err != nil {
			return nil, nil, fmt.Errorf("audit: ephemeral key: %w", err)
		}
		logger.Error("audit.signing_key_file is not set: checkpoints are signed with a throwaway key " +
			"and cannot be verified after this process exits; set it outside demos")
		return signerAndVerifier(skey)
	}
	return nil, nil, fmt.Errorf("audit.signing_key_file: required")
}

func signerAndVerifier(skey string) (note.Signer, note.Verifier, error) {
	skey = strings.TrimSpace(skey)
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, err
	}
	vkey, err := VerifierFromSignerKey(skey)
	if err != nil {
		return nil, nil, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, err
	}
	return s, v, nil
}

// Verifier verifies this log's checkpoints: derived from the signing key
// loaded at start (a throwaway key included), so the node can verify its
// own log without reading the key file again. Nil when Config.Signer was
// given.
func (l *Log) Verifier() note.Verifier { return l.verifier }

// keyName makes a valid note key name (no spaces or '+') out of s.
func keyName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c <= ' ' || c == '+' || c > '~' {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "chartguard-audit"
	}
	return string(b)
}

// wireChain connects the chain to the segment writer, the sinks and the
// metrics.
func (l *Log) wireChain() {
	c := l.chain
	c.every = int64(l.cfg.CheckpointEvery)
	c.retention, _ = ParseRetention(l.cfg.Retention) // Validate checked it
	c.logger, c.now = l.logger, l.now
	c.toSinks = l.writeSinkLine
	c.syncRecords = l.seg.syncRecords
	c.cpFailed = l.m.cpFailed.Inc
	c.markUnsigned()
	l.seg.onChunk = c.added
	l.seg.now = l.now
	l.seg.maxAge = l.cfg.Segment.MaxAge
	l.seg.started = firstRecordTime(l.seg.tail.path)
	if l.seg.started.IsZero() {
		l.seg.started = l.now()
	}
	l.seg.onRotate = func(current string) {
		if err := c.applyRetention(current); err != nil {
			l.logger.Error("audit retention failed", "err", err)
		}
	}
}

// writeSinkLine copies a checkpoint or retention line to the JSON sinks.
func (l *Log) writeSinkLine(line []byte) {
	for _, s := range l.sinks {
		js, ok := s.sink.(*JSONSink)
		if !ok {
			continue
		}
		if err := js.writeLine(line); err != nil {
			l.m.failed.WithLabelValues(s.name).Inc()
			l.logger.Error("audit sink write failed", "sink", s.name, "err", err)
		}
	}
}

// DiskReady returns an error when the file system holding the log has
// less than MinFree bytes free, so /readyz drains this replica before the
// disk fills and every request fails closed. nil if MinFree is 0.
func (l *Log) DiskReady() error {
	if l.cfg.MinFree <= 0 {
		return nil
	}
	free, err := diskFree(l.cfg.Dir)
	if err != nil {
		return fmt.Errorf("audit: free space: %w", err)
	}
	if free < uint64(l.cfg.MinFree) {
		return fmt.Errorf("audit: %d bytes free, audit.min_free is %d", free, l.cfg.MinFree)
	}
	return nil
}

// checkpointAge is the age of the oldest record no checkpoint covers.
func checkpointAge(c *chain, now func() time.Time) float64 {
	since := c.unsigned.Load()
	if since == 0 {
		return 0
	}
	return max(0, now().Sub(time.Unix(0, since)).Seconds())
}
