package session_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chartguard/chartguard/chartguard"
	"github.com/chartguard/chartguard/session"
)

func Example() {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }

	m, err := session.NewManager(session.Config{
		Now:        clock,
		Background: []string{"/api/poll*"},
	}, session.NewMemory(clock))
	if err != nil {
		panic(err)
	}

	// At login (after authn verified the user): a fresh session.
	user := chartguard.Identity{Issuer: "https://idp.example.org", Subject: "u1", Roles: []string{"physician"}}
	s, err := m.New(ctx, user, session.Login{IP: "10.20.1.7"})
	if err != nil {
		panic(err)
	}
	// The proxy sets s.ID as the cookie value; audit and logs use the hash.
	fmt.Println(len(s.ID), len(session.Hash(s.ID)))

	// On every request: look it up. Polling does not keep it alive.
	now = now.Add(10 * time.Minute)
	_, err = m.Lookup(ctx, s.ID, session.Activity{Path: "/api/poll/inbox"})
	fmt.Println(err)
	now = now.Add(5 * time.Minute)
	_, err = m.Lookup(ctx, s.ID, session.Activity{Path: "/chart/p1"})
	fmt.Println(errors.Is(err, session.ErrExpiredIdle))

	// A periodic job writes activity behind (and sweeps the memory store).
	if err := m.Flush(ctx); err != nil {
		panic(err)
	}
	// Output:
	// 43 64
	// <nil>
	// true
}
