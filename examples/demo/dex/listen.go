package dex

import (
	"net"

	"github.com/chartguard/chartguard/examples/fhir-demo/devissuer"
)

// ErrNotLoopback is returned by [ListenLoopback] and [Start] for any address
// outside 127.0.0.0/8 and ::1.
var ErrNotLoopback = devissuer.ErrNotLoopback

// ListenLoopback is the development issuer's loopback-only listener
// (devissuer.ListenLoopback): the demo prints its users' passwords, so it
// follows the same rule and the same checks.
func ListenLoopback(addr string) (net.Listener, error) { return devissuer.ListenLoopback(addr) }
