package authn

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestToken68Alphabet checks every byte against RFC 7235's token68
// alphabet: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/", then "=".
func TestToken68Alphabet(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
	for c := range 256 {
		s := "a" + string([]byte{byte(c)}) + "b"
		assert.Equal(t, strings.IndexByte(alphabet, byte(c)) >= 0, isToken68(s), "byte %#x", c)
	}
	assert.True(t, isToken68("abc=="), "trailing '=' padding")
	assert.False(t, isToken68("a=b"), "'=' only at the end")
	assert.False(t, isToken68("==="), "padding alone")
}
