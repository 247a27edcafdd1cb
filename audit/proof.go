package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// proofKind names the JSON document [Prove] writes.
const proofKind = "inclusion_proof"

// inclusionProof is the self-contained proof that a record is in the log:
// the record (exact bytes), its index, the RFC 6962 audit path and the
// signed checkpoint the path leads to.
type inclusionProof struct {
	V          int         `json:"v"`
	Kind       string      `json:"kind"`
	Index      uint64      `json:"index"`
	Record     []byte      `json:"record"` // base64 of the exact line
	Proof      []tlog.Hash `json:"proof"`
	Checkpoint string      `json:"checkpoint"`
}

// ProvedRecord is what [VerifyProof] established.
type ProvedRecord struct {
	Index      uint64
	Line       []byte // the record's JSON line
	Checkpoint []byte // the signed checkpoint it is included in
	Origin     string
	Size       uint64 // of that checkpoint's tree
}

// Prove returns a JSON inclusion proof for the record at index against the
// latest checkpoint in dir. It checks its own proof before returning it,
// so a record that does not match the tree is refused ([ErrTampered]).
func Prove(dir string, index uint64) ([]byte, error) {
	lines, _, err := readLogLines(dir)
	if err != nil {
		return nil, err
	}
	text := ""
	for _, ll := range lines {
		if ll.Kind == kindCheckpoint {
			text = ll.Checkpoint
		}
	}
	if text == "" {
		return nil, errors.New("audit: prove: the log has no checkpoint yet")
	}
	cp, err := ParseCheckpoint(noteText(text))
	if err != nil {
		return nil, tampered(0, "latest checkpoint: %v", err)
	}
	if index >= uint64(cp.Size) {
		return nil, fmt.Errorf("audit: prove: index %d is not covered by the latest checkpoint (size %d); try again after the next one", index, cp.Size)
	}
	line, err := recordAt(dir, index)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, hashesName))
	if err != nil {
		return nil, fmt.Errorf("audit: open hashes: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit: stat hashes: %w", err)
	}
	have := info.Size() / tlog.HashSize
	hs := &hashStore{f: f, durable: have, memBase: have}
	p, err := tlog.ProveRecord(cp.Size, int64(index), hs)
	if err != nil {
		return nil, fmt.Errorf("audit: prove: %w", err)
	}
	if err := tlog.CheckRecord(p, cp.Size, cp.Root, int64(index), tlog.RecordHash(line)); err != nil {
		return nil, tampered(int64(index), "the record does not match the signed tree: %v", err)
	}
	out, err := json.MarshalIndent(inclusionProof{V: 1, Kind: proofKind, Index: index, Record: line, Proof: p, Checkpoint: text}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("audit: prove: %w", err)
	}
	return append(out, '\n'), nil
}

// recordAt returns the line of the record at index.
func recordAt(dir string, index uint64) ([]byte, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	for rl, err := range readLines(segs, index) {
		if err != nil {
			return nil, err
		}
		if rl.Index != index {
			break
		}
		return bytes.Clone(rl.Line), nil
	}
	return nil, fmt.Errorf("audit: prove: record %d is not in the log (removed by retention?)", index)
}

// VerifyProof checks a proof made by [Prove] without the log: the
// checkpoint's signature with v, and that the record is leaf Index of the
// tree that checkpoint signs. Any failure wraps [ErrTampered].
func VerifyProof(proof []byte, v note.Verifier) (ProvedRecord, error) {
	var p inclusionProof
	dec := json.NewDecoder(bytes.NewReader(proof))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return ProvedRecord{}, fmt.Errorf("%w: not an inclusion proof: %w", ErrTampered, err)
	}
	if p.V != 1 || p.Kind != proofKind {
		return ProvedRecord{}, fmt.Errorf("%w: not an inclusion proof (v %d, kind %q)", ErrTampered, p.V, p.Kind)
	}
	cp, err := OpenCheckpoint([]byte(p.Checkpoint), v)
	if err != nil {
		return ProvedRecord{}, fmt.Errorf("%w: %w", ErrTampered, err)
	}
	if p.Index >= uint64(cp.Size) {
		return ProvedRecord{}, tampered(int64(p.Index), "index beyond the checkpoint's tree (size %d)", cp.Size)
	}
	if seq, ok := recordSeq(p.Record); !ok || seq != p.Index {
		return ProvedRecord{}, tampered(int64(p.Index), "the record's seq is %s", seqText(p.Record))
	}
	if err := tlog.CheckRecord(p.Proof, cp.Size, cp.Root, int64(p.Index), tlog.RecordHash(p.Record)); err != nil {
		return ProvedRecord{}, tampered(int64(p.Index), "the record is not in the signed tree: %v", err)
	}
	return ProvedRecord{Index: p.Index, Line: p.Record, Checkpoint: []byte(p.Checkpoint), Origin: cp.Origin, Size: uint64(cp.Size)}, nil
}
