package audit

import (
	"testing"
	"time"
)

// FuzzParseRange: any input either fails with ErrBadQuery or gives a
// non-empty range; a date "to" always ends on a midnight of its zone.
func FuzzParseRange(f *testing.F) {
	for _, s := range [][2]string{{"2026-01-01", "2026-01-31"}, {"2026-03-08T01:30", "2026-03-08T03:15"},
		{"2026-01-01T00:00:00+01:00", ""}, {"", "2026-11-01"}, {"2026-02-30", ""}, {"x", "y"}} {
		f.Add(s[0], s[1])
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, from, to string) {
		a, b, err := ParseRange(from, to, ny)
		if err != nil {
			return
		}
		if !a.IsZero() && !b.IsZero() && !a.Before(b) {
			t.Fatalf("ParseRange(%q, %q) = [%s, %s): empty range accepted", from, to, a, b)
		}
		if _, derr := time.ParseInLocation(time.DateOnly, to, ny); derr == nil {
			if l := b.In(ny); l.Hour() != 0 || l.Minute() != 0 || l.Second() != 0 {
				t.Fatalf("to date %q ends at %s, want midnight", to, l)
			}
		}
	})
}

// FuzzParseOfflineAccess: reading a record never panics, and a record
// read without verification has exactly the four fields.
func FuzzParseOfflineAccess(f *testing.F) {
	f.Add([]byte(offlineHeader + "\nwho: a\nwhen: 2026-01-01T00:00:00Z\nreason: r\nquery: q\n\n— alice AAAA\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		a, err := parseOfflineAccess(msg, nil)
		if err == nil && a.When.IsZero() {
			t.Fatalf("accepted a record without a time: %q", msg)
		}
	})
}
