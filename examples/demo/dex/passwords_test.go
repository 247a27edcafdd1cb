package dex

import (
	"log/slog"
	"testing"

	"github.com/dexidp/dex/storage"
	"github.com/dexidp/dex/storage/memory"
	"github.com/stretchr/testify/assert"
)

// TestPasswordStoreIsReadOnly checks what Dex's login path does not reach:
// the demo entries cannot be changed, other emails fall through to the
// underlying store. (Lookups that hash are covered by the login tests.)
func TestPasswordStoreIsReadOnly(t *testing.T) {
	t.Parallel()
	users := []User{{Role: "nurse", Email: "nurse@" + EmailDomain, Password: "pw", Groups: []string{"chartguard-nurse"}}}
	ps := withPasswords(memory.New(slog.New(slog.DiscardHandler)), users)
	ctx := t.Context()
	demo := "NURSE@" + EmailDomain // emails compare case-insensitively

	tests := []struct {
		name    string
		write   func(email string) error
		email   string
		wantErr error
	}{
		{"create demo user", func(e string) error { return ps.CreatePassword(ctx, storage.Password{Email: e}) }, demo, errReadOnly},
		{"update demo user", func(e string) error {
			return ps.UpdatePassword(ctx, e, func(p storage.Password) (storage.Password, error) { return p, nil })
		}, demo, errReadOnly},
		{"delete demo user", func(e string) error { return ps.DeletePassword(ctx, e) }, demo, errReadOnly},
		{"delete other user", func(e string) error { return ps.DeletePassword(ctx, e) }, "x@example.org", storage.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.ErrorIs(t, tc.write(tc.email), tc.wantErr)
		})
	}
	_, err := ps.GetPassword(ctx, "x@example.org")
	assert.ErrorIs(t, err, storage.ErrNotFound)
}
