package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"golang.org/x/mod/sumdb/note"
)

// Offline access records: a query run with --dir on a copy of a log does
// not pass through a node, so nothing else would record it. Before the
// query runs, the CLI writes a note signed with the auditor's own key into
// the copied directory: who, when, why and what query. `chartguard audit
// offline-access DIR` lists them. The files are named
// offline-access-<unix nanos>.note; segment readers and verify ignore them.

const (
	offlinePrefix = "offline-access-"
	offlineSuffix = ".note"
	offlineHeader = "chartguard audit offline access v1"
)

// ErrNoReason is returned for an offline access without a reason.
var ErrNoReason = errors.New("audit: an offline read needs a reason (--offline-reason)")

// OfflineAccess is one recorded offline read of a log copy.
type OfflineAccess struct {
	Who    string    `json:"who"`
	When   time.Time `json:"when"`
	Reason string    `json:"reason"`
	Query  string    `json:"query"`
	// KeyName is the name of the key that signed the note.
	KeyName string `json:"key_name"`
	// Verified: the signature was checked with a verifier the reader gave.
	Verified bool   `json:"verified"`
	File     string `json:"file"`
}

func (a OfflineAccess) text() string {
	return fmt.Sprintf("%s\nwho: %s\nwhen: %s\nreason: %s\nquery: %s\n", offlineHeader,
		a.Who, a.When.UTC().Format(time.RFC3339Nano), a.Reason, a.Query)
}

// checkField: one line of printable text, bounded.
func checkField(name, v string, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return fmt.Errorf("%w: %s is empty", ErrBadQuery, name)
	case len(v) > 1024:
		return fmt.Errorf("%w: %s is longer than 1024 bytes", ErrBadQuery, name)
	case strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return fmt.Errorf("%w: %s holds a control character", ErrBadQuery, name)
	}
	return nil
}

// WriteOfflineAccess signs a record of an offline read with s and writes
// it into dir (mode 0600) before the read happens. It returns the file.
func WriteOfflineAccess(dir string, a OfflineAccess, s note.Signer) (string, error) {
	if strings.TrimSpace(a.Reason) == "" {
		return "", ErrNoReason
	}
	for _, f := range []struct{ name, v string }{{"who", a.Who}, {"reason", a.Reason}, {"query", a.Query}} {
		if err := checkField(f.name, f.v, f.name != "query"); err != nil {
			return "", err
		}
	}
	if s == nil {
		return "", fmt.Errorf("%w: an offline read needs a signing key (--offline-key)", ErrBadQuery)
	}
	msg, err := note.Sign(&note.Note{Text: a.text()}, s)
	if err != nil {
		return "", fmt.Errorf("audit: sign offline access: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%s%020d%s", offlinePrefix, a.When.UnixNano(), offlineSuffix))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("audit: write offline access record: %w", err)
	}
	_, err = f.Write(msg)
	if err2 := f.Sync(); err == nil {
		err = err2
	}
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("audit: write offline access record: %w", err)
	}
	return path, nil
}

// ReadOfflineAccess lists the offline access records of dir, oldest
// first. With verifiers, a record must be signed by one of them or it is
// an error; without, records are parsed and marked unverified.
func ReadOfflineAccess(dir string, vs ...note.Verifier) ([]OfflineAccess, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	var out []OfflineAccess
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, offlinePrefix) || !strings.HasSuffix(name, offlineSuffix) || !e.Type().IsRegular() {
			continue
		}
		msg, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		a, err := parseOfflineAccess(msg, vs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		a.File = name
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b OfflineAccess) int { return a.When.Compare(b.When) })
	return out, nil
}

func parseOfflineAccess(msg []byte, vs []note.Verifier) (OfflineAccess, error) {
	var a OfflineAccess
	var text string
	if len(vs) > 0 {
		n, err := note.Open(msg, note.VerifierList(vs...))
		if err != nil {
			return a, fmt.Errorf("%w: offline access record signature: %w", ErrTampered, err)
		}
		text, a.Verified, a.KeyName = n.Text, true, n.Sigs[0].Name
	} else {
		i := strings.Index(string(msg), "\n\n")
		if i < 0 {
			return a, fmt.Errorf("%w: offline access record is not a signed note", ErrCorrupt)
		}
		text = string(msg[:i+1])
		if sig := strings.TrimPrefix(string(msg[i+2:]), "— "); sig != string(msg[i+2:]) {
			a.KeyName, _, _ = strings.Cut(sig, " ")
		}
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 5 || lines[0] != offlineHeader {
		return a, fmt.Errorf("%w: malformed offline access record", ErrCorrupt)
	}
	fields := map[string]*string{"who": &a.Who, "reason": &a.Reason, "query": &a.Query}
	var when string
	fields["when"] = &when
	for i, key := range []string{"who", "when", "reason", "query"} {
		v, ok := strings.CutPrefix(lines[i+1], key+": ")
		if !ok {
			return a, fmt.Errorf("%w: offline access record: want %q on line %d", ErrCorrupt, key, i+2)
		}
		*fields[key] = v
	}
	t, err := time.Parse(time.RFC3339Nano, when)
	if err != nil {
		return a, fmt.Errorf("%w: offline access record: bad time", ErrCorrupt)
	}
	a.When = t
	return a, nil
}
