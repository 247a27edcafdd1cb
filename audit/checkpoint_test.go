package audit

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"
)

func TestParseCheckpoint(t *testing.T) {
	root := tlog.RecordHash([]byte("r"))
	good := "emr.example.org/audit/n1\n42\n" + root.String() + "\n"
	tests := []struct {
		name, text string
		ok         bool
	}{
		{"valid", good, true},
		{"with extension line", good + "ext\n", true},
		{"no final newline", strings.TrimSuffix(good, "\n"), false},
		{"leading zero size", "o\n042\n" + root.String() + "\n", false},
		{"negative size", "o\n-1\n" + root.String() + "\n", false},
		{"short root", "o\n1\nAAAA\n", false},
		{"empty origin", "\n1\n" + root.String() + "\n", false},
		{"empty extension", good + "\n", false},
		{"two lines", "o\n1\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp, err := ParseCheckpoint(tt.text)
			if !tt.ok {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "emr.example.org/audit/n1", cp.Origin)
			assert.Equal(t, int64(42), cp.Size)
			assert.Equal(t, root, cp.Root)
		})
	}
}

func TestCheckpointSignRoundTrip(t *testing.T) {
	cp := Checkpoint{Origin: testOrigin, Size: 7, Root: tlog.RecordHash([]byte("x"))}
	msg, err := signCheckpoint(cp, testSigner)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(msg), cp.String()+"\n\u2014 "+testOrigin+" "), "C2SP body then a signature line:\n%s", msg)
	got, err := OpenCheckpoint(msg, testVerifier)
	require.NoError(t, err)
	assert.Equal(t, cp, got)
	_, other := mustKeyPair(testOrigin)
	_, err = OpenCheckpoint(msg, other)
	assert.Error(t, err)
}

func TestVerifierFromSignerKey(t *testing.T) {
	for range 20 { // base64 keys often hold '+'
		skey, vkey, err := GenerateKey("emr.example.org/audit/n1")
		require.NoError(t, err)
		got, err := VerifierFromSignerKey(skey + "\n")
		require.NoError(t, err)
		assert.Equal(t, vkey, got)
	}
	_, err := VerifierFromSignerKey("emr.example.org+1234+AAAA")
	assert.Error(t, err, "a verifier key is not a signer key")
}

func FuzzParseCheckpoint(f *testing.F) {
	root := tlog.RecordHash([]byte("r")).String()
	f.Add("emr.example.org/audit/n1\n42\n" + root + "\n")
	f.Add("o\n0\n" + root + "\next\n")
	f.Add("o\n18446744073709551616\n" + root + "\n")
	f.Add("\n\n\n")
	f.Fuzz(func(t *testing.T, text string) {
		cp, err := ParseCheckpoint(text)
		if err != nil {
			return
		}
		again, err := ParseCheckpoint(cp.String())
		require.NoError(t, err, "a parsed checkpoint formats to a valid one")
		require.Equal(t, cp, again)
		require.True(t, strings.HasPrefix(text, cp.String()), "the first three lines are canonical")
	})
}

func FuzzVerifyProof(f *testing.F) {
	f.Add([]byte(`{"v":1,"kind":"inclusion_proof","index":0,"record":"e30=","proof":[],"checkpoint":"o\n1\nAAAA\n"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, proof []byte) {
		_, err := VerifyProof(proof, testVerifier)
		require.Error(t, err, "nothing without a real signature verifies")
		require.ErrorIs(t, err, ErrTampered)
	})
}
