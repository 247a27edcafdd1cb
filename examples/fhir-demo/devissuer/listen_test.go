package devissuer

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestListenLoopbackRefuses(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{
		"", ":0", ":8082", "0.0.0.0:0", "10.0.0.1:0", "192.168.1.10:8082", "[::]:0",
		"[fe80::1%lo]:0", "example.com:0", "127.0.0.1", "localhost", "0:0",
		"[::ffff:10.0.0.1]:0", "127.0.0.1.nip.io:0",
	} {
		t.Run(addr, func(t *testing.T) {
			ln, err := ListenLoopback(addr)
			require.ErrorIs(t, err, ErrNotLoopback)
			assert.Nil(t, ln)
			assert.Contains(t, err.Error(), "loopback only (127.0.0.0/8, ::1 or localhost")
		})
	}
}

func TestListenLoopbackAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		ipv6 bool
	}{
		{"127.0.0.1:0", false},
		{"localhost:0", false},
		{"127.0.0.2:0", false},
		{"[::ffff:127.0.0.1]:0", false},
		{"[::1]:0", true},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			ln, err := ListenLoopback(tc.addr)
			if tc.ipv6 && err != nil && !ipv6Available() {
				t.Skip("IPv6 loopback unavailable")
			}
			if tc.addr == "127.0.0.2:0" && err != nil && !errors.Is(err, ErrNotLoopback) {
				t.Skip("only 127.0.0.1 is configured on this host's loopback")
			}
			require.NoError(t, err)
			defer ln.Close()
			ap, err := netip.ParseAddrPort(ln.Addr().String())
			require.NoError(t, err)
			assert.True(t, ap.Addr().IsLoopback(), ap)
			assert.NotZero(t, ap.Port())
			// It really serves: a client can connect.
			c, err := net.Dial("tcp", ln.Addr().String())
			require.NoError(t, err)
			require.NoError(t, c.Close())
		})
	}
}

func ipv6Available() bool {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}
