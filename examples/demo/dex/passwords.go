package dex

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/dexidp/dex/storage"
	"golang.org/x/crypto/bcrypt"
)

// errReadOnly is returned for writes to a demo user's password entry.
var errReadOnly = errors.New("dex: demo passwords are read-only")

// passwordStore is storage.WithStaticPasswords with lazy hashing: it serves
// the demo users' password entries read-only and makes each bcrypt hash on
// the entry's first lookup, not at start.
//
// Why: Dex refuses hashes below bcrypt's default cost, which takes about
// 50 ms per hash, and close to a second under the race detector; hashing
// nine users up front made every start (and every test) seconds slower.
// Security: the first login of a user costs one hash more than the next,
// which tells a caller that the user exists; Dex already answers faster
// for unknown users (no hash compared), so nothing new is revealed. The
// plain passwords are held in memory anyway ([IdP.Users]).
type passwordStore struct {
	storage.Storage
	byEmail map[string]*lazyPassword // keys in lower case, as Dex compares emails
	all     []*lazyPassword
}

// lazyPassword is one demo user's entry, hashed once on first use.
type lazyPassword struct {
	user  User
	once  sync.Once
	entry storage.Password
	err   error
}

func withPasswords(s storage.Storage, users []User) storage.Storage {
	ps := passwordStore{Storage: s, byEmail: make(map[string]*lazyPassword, len(users))}
	for _, u := range users {
		lp := &lazyPassword{user: u}
		ps.byEmail[strings.ToLower(u.Email)] = lp
		ps.all = append(ps.all, lp)
	}
	return ps
}

// get returns a copy of the entry, hashing the password on first use.
func (lp *lazyPassword) get() (storage.Password, error) {
	lp.once.Do(func() {
		hash, err := bcrypt.GenerateFromPassword([]byte(lp.user.Password), bcrypt.DefaultCost)
		if err != nil {
			lp.err = fmt.Errorf("dex: hash password: %w", err)
			return
		}
		lp.entry = storage.Password{
			Email:             lp.user.Email,
			Hash:              hash,
			Username:          lp.user.Role,
			Name:              "Demo " + lp.user.Role,
			PreferredUsername: lp.user.Role,
			UserID:            "demo-" + lp.user.Role,
			Groups:            lp.user.Groups,
		}
	})
	p := lp.entry
	p.Hash = slices.Clone(p.Hash)
	p.Groups = slices.Clone(p.Groups)
	return p, lp.err
}

func (ps passwordStore) GetPassword(ctx context.Context, email string) (storage.Password, error) {
	if lp, ok := ps.byEmail[strings.ToLower(email)]; ok {
		return lp.get()
	}
	return ps.Storage.GetPassword(ctx, email)
}

func (ps passwordStore) ListPasswords(ctx context.Context) ([]storage.Password, error) {
	list, err := ps.Storage.ListPasswords(ctx)
	if err != nil {
		return nil, err
	}
	list = slices.DeleteFunc(list, func(p storage.Password) bool { return ps.isDemo(p.Email) })
	for _, lp := range ps.all {
		p, err := lp.get()
		if err != nil {
			return nil, err
		}
		list = append(list, p)
	}
	return list, nil
}

func (ps passwordStore) isDemo(email string) bool {
	_, ok := ps.byEmail[strings.ToLower(email)]
	return ok
}

func (ps passwordStore) CreatePassword(ctx context.Context, p storage.Password) error {
	if ps.isDemo(p.Email) {
		return errReadOnly
	}
	return ps.Storage.CreatePassword(ctx, p)
}

func (ps passwordStore) DeletePassword(ctx context.Context, email string) error {
	if ps.isDemo(email) {
		return errReadOnly
	}
	return ps.Storage.DeletePassword(ctx, email)
}

func (ps passwordStore) UpdatePassword(ctx context.Context, email string, updater func(storage.Password) (storage.Password, error)) error {
	if ps.isDemo(email) {
		return errReadOnly
	}
	return ps.Storage.UpdatePassword(ctx, email, updater)
}
