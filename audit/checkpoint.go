package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	// checkpointsName is the file, next to the segments, that holds the
	// log's signed checkpoints and retention notes, one JSON line each.
	checkpointsName = "checkpoints"
	// hashesName holds the tree's stored hashes (see tree.go).
	hashesName = "hashes"

	kindCheckpoint = "checkpoint"
	kindRetention  = "retention"

	// retentionHeader starts the body of a retention note. It is not a
	// valid origin of ours, so a retention note never reads as a checkpoint.
	retentionHeader = "chartguard audit retention v1"
)

// Checkpoint is a parsed C2SP tlog-checkpoint body: origin, tree size and
// root hash. Extension lines are ignored.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// String formats the checkpoint body (origin, size, base64 root, each
// followed by a newline).
func (c Checkpoint) String() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, c.Root)
}

// ParseCheckpoint parses a C2SP tlog-checkpoint body (the text of a note,
// without its signatures). It is strict about the first three lines:
// a non-empty origin, a decimal size without leading zeros and a base64
// 32-byte root; further lines are extensions and must not be empty.
func ParseCheckpoint(text string) (Checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, errors.New("checkpoint: body does not end with a newline")
	}
	lines := strings.Split(text[:len(text)-1], "\n")
	if len(lines) < 3 {
		return Checkpoint{}, errors.New("checkpoint: want origin, size and root lines")
	}
	origin, size, root := lines[0], lines[1], lines[2]
	if origin == "" || strings.TrimSpace(origin) != origin {
		return Checkpoint{}, errors.New("checkpoint: bad origin line")
	}
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != size {
		return Checkpoint{}, fmt.Errorf("checkpoint: bad size %q", size)
	}
	h, err := tlog.ParseHash(root)
	if err != nil || h.String() != root {
		return Checkpoint{}, fmt.Errorf("checkpoint: bad root %q", root)
	}
	for _, ext := range lines[3:] {
		if ext == "" {
			return Checkpoint{}, errors.New("checkpoint: empty extension line")
		}
	}
	return Checkpoint{Origin: origin, Size: n, Root: h}, nil
}

// OpenCheckpoint verifies the signed note msg with v and parses its body.
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	return ParseCheckpoint(n.Text)
}

// signCheckpoint returns the signed note for c.
func signCheckpoint(c Checkpoint, s note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: c.String()}, s)
}

// logLine is one line of the checkpoints file, and the line a checkpoint
// takes in the stdout sink.
type logLine struct {
	V          int    `json:"v"`
	Kind       string `json:"kind"`
	Checkpoint string `json:"checkpoint,omitempty"`
	Note       string `json:"note,omitempty"`
}

func marshalLogLine(kind, text string) []byte {
	ll := logLine{V: 1, Kind: kind}
	if kind == kindCheckpoint {
		ll.Checkpoint = text
	} else {
		ll.Note = text
	}
	b, _ := json.Marshal(ll) // strings only: cannot fail
	return append(b, '\n')
}

// retentionNote is the signed statement that records below First were
// removed by retention, not by someone else.
type retentionNote struct {
	Origin string
	First  int64
}

func (r retentionNote) String() string {
	return fmt.Sprintf("%s\n%s\n%d\n", retentionHeader, r.Origin, r.First)
}

func parseRetentionNote(text string) (retentionNote, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 3 || lines[0] != retentionHeader || !strings.HasSuffix(text, "\n") {
		return retentionNote{}, errors.New("retention note: malformed")
	}
	n, err := strconv.ParseInt(lines[2], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[2] {
		return retentionNote{}, errors.New("retention note: bad first index")
	}
	return retentionNote{Origin: lines[1], First: n}, nil
}

// readLogLines reads the checkpoints file of dir. A missing file is empty;
// a partial last line (a crash mid-append) is ignored and its offset
// returned as end, so the writer can trim it.
func readLogLines(dir string) (lines []logLine, end int64, err error) {
	f, err := os.Open(dir + string(os.PathSeparator) + checkpointsName)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("audit: open checkpoints: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		b, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return lines, end, nil // b is a partial line or empty
		}
		if err != nil {
			return nil, 0, fmt.Errorf("audit: read checkpoints: %w", err)
		}
		var ll logLine
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ll); err != nil || ll.V != 1 {
			return nil, 0, fmt.Errorf("%w: checkpoints line %d is not a checkpoint record", ErrCorrupt, len(lines)+1)
		}
		lines = append(lines, ll)
		end += int64(len(b))
	}
}

// LoadSignerFile reads a note signer key ("PRIVATE+KEY+...") from path.
// Callers name the setting the path came from in front of its errors.
func LoadSignerFile(path string) (note.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := note.NewSigner(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s does not hold a note signer key (create one with `chartguard audit keygen`): %w", path, err)
	}
	return s, nil
}

// LoadVerifierFile reads a note verifier key ("<name>+<hash>+<key>") from
// path; `chartguard audit keygen` prints and writes one.
func LoadVerifierFile(path string) (note.Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit: verifier key: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("audit: %s does not hold a note verifier key: %w", path, err)
	}
	return v, nil
}

// GenerateKey returns a new Ed25519 note signer key and its verifier key
// for a key named name (e.g. the log's origin).
func GenerateKey(name string) (signer, verifier string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

// VerifierFromSignerKey returns the verifier key string for a note signer
// key, so a node's own config (audit.signing_key_file) can verify its log.
func VerifierFromSignerKey(skey string) (string, error) {
	// PRIVATE+KEY+<name>+<hash>+<base64(alg || seed)>
	parts := strings.SplitN(strings.TrimSpace(skey), "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("not a note signer key")
	}
	if _, err := note.NewSigner(strings.TrimSpace(skey)); err != nil {
		return "", err
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("not an Ed25519 note signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}
