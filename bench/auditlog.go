package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// AuditStatuses reads every record of the audit segment files
// (audit-*.log) in dir and counts them by request.status. Read it after
// [Harness.Close], when the log is closed. A line that is not a JSON event
// is an error: the harness never writes anything else there.
func AuditStatuses(dir string) (map[int]int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("bench: audit dir: %w", err)
	}
	counts := map[int]int{}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, "audit-") || !strings.HasSuffix(name, ".log") {
			continue
		}
		if err := countFile(filepath.Join(dir, name), counts); err != nil {
			return nil, err
		}
	}
	return counts, nil
}

func countFile(path string, counts map[int]int) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("bench: audit segment: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		var ev struct {
			Request struct {
				Status int `json:"status"`
			} `json:"request"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("bench: %s line %d: %w", filepath.Base(path), n, err)
		}
		counts[ev.Request.Status]++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("bench: audit segment: %w", err)
	}
	return nil
}

// Total sums the counts of [AuditStatuses].
func Total(counts map[int]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}
