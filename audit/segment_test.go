package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chartguard/chartguard/chartguard"
)

func TestSegmentNames(t *testing.T) {
	tests := []struct {
		name   string
		seq    uint64
		wantOK bool
	}{
		{"audit-00000000000000000000.log", 0, true},
		{"audit-00000000000000001000.log", 1000, true},
		{"audit-18446744073709551615.log", 1<<64 - 1, true},
		{"audit-18446744073709551616.log", 0, false}, // overflows
		{"audit-1000.log", 0, false},                 // not padded
		{"audit-0000000000000000100a.log", 0, false},
		{"audit-+0000000000000000100.log", 0, false},
		{"audit-00000000000000001000.log.tmp", 0, false},
		{".probe", 0, false},
		{"checkpoint", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, ok := parseSegmentName(tt.name)
			assert.Equal(t, tt.wantOK, ok)
			if tt.wantOK {
				assert.Equal(t, tt.seq, seq)
				assert.Equal(t, tt.name, segmentName(seq), "names round-trip")
			}
		})
	}
	assert.Less(t, segmentName(999), segmentName(1000), "lexical order is seq order")
}

func TestLastLine(t *testing.T) {
	long := strings.Repeat("x", 3*tailChunk+17) // spans several backward reads
	tests := []struct {
		name     string
		data     string
		wantEnd  int64
		wantLine string
	}{
		{"empty", "", 0, ""},
		{"only a partial line", "abc", 0, ""},
		{"one line", "abc\n", 4, "abc"},
		{"two lines", "abc\ndef\n", 8, "def"},
		{"partial tail", "abc\ndef\ngh", 8, "def"},
		{"empty last line", "abc\n\n", 5, ""},
		{"long last line", "a\n" + long + "\n", int64(len(long)) + 3, long},
		{"long partial tail", "a\nbc\n" + long, 5, "bc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			end, line, err := lastLine(strings.NewReader(tt.data), int64(len(tt.data)))
			require.NoError(t, err)
			assert.Equal(t, tt.wantEnd, end)
			assert.Equal(t, tt.wantLine, string(line))
		})
	}
}

func TestAppendWithSeq(t *testing.T) {
	l := &Log{cfg: Config{MaxPatientsPerEvent: 10, Node: "n"}, now: fixedNow, ids: idSource{r: bytes.NewReader(make([]byte, 1<<10))}}
	tests := []struct {
		name string
		ev   *chartguard.Event
		seq  uint64
	}{
		{"plain", event("/a"), 0},
		{"large seq", event("/a"), 1<<64 - 1},
		{"hostile strings", &chartguard.Event{
			ID: `","seq":0,"x`, Time: `,"seq":0,`, Action: `"seq":0`,
			Request: chartguard.EventRequest{Path: `/,"seq":0,`},
		}, 42},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := l.prepare(tt.ev)
			require.NoError(t, err)
			line := rec.appendWithSeq(nil, tt.seq)
			require.Equal(t, byte('\n'), line[len(line)-1])
			assert.Equal(t, 1, bytes.Count(line, []byte("\n")), "one record per line")
			var got chartguard.Event
			require.NoError(t, json.Unmarshal(line, &got))
			want := *tt.ev
			want.Seq = tt.seq
			assert.Equal(t, want, got)
		})
	}
}

// FuzzAppendWithSeq checks that splicing the seq into a marshalled event
// gives exactly what marshalling the event with that seq gives.
func FuzzAppendWithSeq(f *testing.F) {
	f.Add("id", "2026-11-25T10:00:00Z", "/fhir/Patient/1", "p1", uint64(7))
	f.Add(`","seq":0,"`, `\"`, "\n\x00\u2028", `,"seq":0,`, uint64(1<<64-1))
	f.Fuzz(func(t *testing.T, id, tm, path, patient string, seq uint64) {
		l := &Log{cfg: Config{MaxPatientsPerEvent: 10}, now: fixedNow}
		ev := &chartguard.Event{ID: id, Time: tm, Request: chartguard.EventRequest{Path: path},
			Resource: &chartguard.EventResource{Patients: []string{patient}}}
		if id == "" {
			ev.ID = "x"
		}
		rec, err := l.prepare(ev)
		require.NoError(t, err)
		got := rec.appendWithSeq(nil, seq)
		ev.Seq = seq
		want, err := json.Marshal(ev)
		require.NoError(t, err)
		assert.Equal(t, string(append(want, '\n')), string(got))
	})
}

func TestSegmentDataAndFirstNUL(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"empty", "", ""},
		{"records only", "{\"seq\":0}\n{\"seq\":1}\n", "{\"seq\":0}\n{\"seq\":1}\n"},
		{"zero tail", "{\"seq\":0}\n\x00\x00\x00", "{\"seq\":0}\n"},
		{"all zeros", "\x00\x00", ""},
		{"torn write", "{\"seq\":0}\n{\"se\x00\x00{\"seq\":9}\n\x00", "{\"seq\":0}\n{\"se"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, string(SegmentData([]byte(tt.content))))
			end, err := firstNUL(strings.NewReader(tt.content), int64(len(tt.content)))
			require.NoError(t, err)
			assert.Equal(t, int64(len(tt.want)), end)
		})
	}
}

func TestFirstNULAcrossChunks(t *testing.T) {
	content := []byte(strings.Repeat("x", 5<<19)) // 2.5 MiB, read in 1 MiB chunks
	for _, at := range []int{0, 1<<20 - 1, 1 << 20, 2<<20 + 3, len(content) - 1} {
		c := bytes.Clone(content)
		c[at] = 0
		end, err := firstNUL(bytes.NewReader(c), int64(len(c)))
		require.NoError(t, err)
		assert.Equal(t, int64(at), end)
	}
	end, err := firstNUL(bytes.NewReader(content), int64(len(content)))
	require.NoError(t, err)
	assert.Equal(t, int64(len(content)), end)
}
