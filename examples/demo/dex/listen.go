package dex

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// ErrNotLoopback is returned by [ListenLoopback] and [Start] for any address
// outside 127.0.0.0/8 and ::1.
var ErrNotLoopback = errors.New("dex: the demo listens on loopback only " +
	"(127.0.0.0/8, ::1 or localhost, with a port)")

// ListenLoopback listens on TCP addr ("127.0.0.1:5556", "[::1]:0",
// "localhost:0") and refuses every other address, including "" and
// "0.0.0.0:…" (all interfaces).
//
// Security: the demo prints its users' passwords, so reachability is the
// only thing standing between a network and every demo identity.
// "localhost" is mapped to 127.0.0.1 rather than resolved, so a hosts file
// or resolver cannot move the listener off loopback; the bound address is
// checked again after listening. Accepted risk: any local process or user
// can log in as a demo user.
func ListenLoopback(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: refusing %q", ErrNotLoopback, addr)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" || !ip.Unmap().IsLoopback() {
		return nil, fmt.Errorf("%w: refusing %q", ErrNotLoopback, addr)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.Unmap().String(), port))
	if err != nil {
		return nil, fmt.Errorf("dex: listen: %w", err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		_ = ln.Close()
		return nil, fmt.Errorf("%w: bound to a non-loopback address", ErrNotLoopback)
	}
	return ln, nil
}
