//go:build unix

package medplum

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseListening(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    int
		wantErr bool
	}{
		{name: "port", line: "LISTENING 8080", want: 8080},
		{name: "CRLF", line: "LISTENING 41234\r", want: 41234},
		{name: "zero", line: "LISTENING 0", wantErr: true},
		{name: "too large", line: "LISTENING 65536", wantErr: true},
		{name: "leading zero", line: "LISTENING 080", wantErr: true},
		{name: "sign", line: "LISTENING +80", wantErr: true},
		{name: "trailing text", line: "LISTENING 80 extra", wantErr: true},
		{name: "no port", line: "LISTENING ", wantErr: true},
		{name: "other line", line: "warming up", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseListening(tt.line)
			if tt.wantErr {
				require.ErrorIs(t, err, errBadLine, "parseListening(%q) = %d, want error", tt.line, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got, "parseListening(%q)", tt.line)
		})
	}
}

func TestStdoutWatcherReportsFirstListeningLine(t *testing.T) {
	ready := make(chan int, 1)
	log := &logBuffer{max: maxLogBytes}
	w := &stdoutWatcher{ready: ready, log: log}

	// Split writes, noise before, and a second LISTENING line that must be ignored.
	for _, chunk := range []string{"noise\nLISTE", "NING 4", "1234\nLISTENING 5555\n"} {
		n, err := w.Write([]byte(chunk))
		require.NoError(t, err)
		assert.Equal(t, len(chunk), n)
	}
	select {
	case port := <-ready:
		assert.Equal(t, 41234, port)
	default:
		t.Fatal("no port reported")
	}
	assert.Empty(t, ready, "a second LISTENING line was reported")
	assert.Equal(t, []string{"noise", "LISTENING 41234", "LISTENING 5555"}, log.lines())
}

func TestLogBufferKeepsTail(t *testing.T) {
	l := &logBuffer{max: 10}
	_, err := l.Write([]byte(strings.Repeat("a", 8) + "\n"))
	require.NoError(t, err)
	_, err = l.Write([]byte("tail\n"))
	require.NoError(t, err)
	assert.Equal(t, []string{"aaaa", "tail"}, l.lines())
}
