package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"
)

// The oracle: RFC 6962 section 2.1 written out naively, recursively.

func naiveLeaf(i int) []byte { return []byte(fmt.Sprintf(`{"v":1,"leaf":%d}`, i)) }

func naiveSplit(n int) int { // largest power of two smaller than n
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

func naiveMTH(leaves [][]byte) tlog.Hash {
	if len(leaves) == 1 {
		return tlog.RecordHash(leaves[0])
	}
	k := naiveSplit(len(leaves))
	return tlog.NodeHash(naiveMTH(leaves[:k]), naiveMTH(leaves[k:]))
}

// naivePath is PATH(m, D[n]).
func naivePath(m int, leaves [][]byte) []tlog.Hash {
	if len(leaves) <= 1 {
		return nil
	}
	k := naiveSplit(len(leaves))
	if m < k {
		return append(naivePath(m, leaves[:k]), naiveMTH(leaves[k:]))
	}
	return append(naivePath(m-k, leaves[k:]), naiveMTH(leaves[:k]))
}

// naiveConsistency is PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
func naiveConsistency(m int, leaves [][]byte, complete bool) []tlog.Hash {
	n := len(leaves)
	if m == n {
		if complete {
			return nil
		}
		return []tlog.Hash{naiveMTH(leaves)}
	}
	k := naiveSplit(n)
	if m <= k {
		return append(naiveConsistency(m, leaves[:k], complete), naiveMTH(leaves[k:]))
	}
	return append(naiveConsistency(m-k, leaves[k:], false), naiveMTH(leaves[:k]))
}

// buildTree adds n leaves through the writer's tree (hashes file plus
// in-memory window), flushing as the writer does.
func buildTree(t testing.TB, n int) (*tree, [][]byte) {
	t.Helper()
	dir := t.TempDir()
	tr, err := openTree(dir, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.close() })
	leaves := make([][]byte, n)
	for i := range n {
		leaves[i] = naiveLeaf(i)
		require.NoError(t, tr.addLeaf(leaves[i]))
		if i%97 == 0 {
			require.NoError(t, tr.hs.flush())
		}
	}
	require.NoError(t, tr.hs.flush())
	return tr, leaves
}

// checkAgainstOracle compares roots, inclusion and consistency proofs of
// the stored tree at size n with the naive tree, and that tlog's checkers
// accept them.
func checkAgainstOracle(t *testing.T, tr *tree, leaves [][]byte, n, m, i int) {
	t.Helper()
	root, err := tlog.TreeHash(int64(n), tr.hs)
	require.NoError(t, err)
	require.Equal(t, naiveMTH(leaves[:n]), root, "root of %d", n)

	p, err := tlog.ProveRecord(int64(n), int64(i), tr.hs)
	require.NoError(t, err)
	assert.Equal(t, nonNil(naivePath(i, leaves[:n])), nonNil(p), "path of %d in %d", i, n)
	require.NoError(t, tlog.CheckRecord(p, int64(n), root, int64(i), tlog.RecordHash(leaves[i])))
	require.Error(t, tlog.CheckRecord(p, int64(n), root, int64(i), tlog.RecordHash([]byte("forged"))))

	old := naiveMTH(leaves[:m])
	cp, err := tlog.ProveTree(int64(n), int64(m), tr.hs)
	require.NoError(t, err)
	assert.Equal(t, nonNil(naiveConsistency(m, leaves[:n], true)), nonNil(cp), "consistency %d→%d", m, n)
	require.NoError(t, tlog.CheckTree(cp, int64(n), root, int64(m), old))
	if m < n {
		require.Error(t, tlog.CheckTree(cp, int64(n), root, int64(m), tlog.RecordHash([]byte("forged"))))
	}
}

func TestTreeMatchesNaiveRFC6962(t *testing.T) {
	tr, leaves := buildTree(t, 70)
	for n := 1; n <= 70; n++ {
		for i := 0; i < n; i++ {
			checkAgainstOracle(t, tr, leaves, n, 1+i, i)
		}
	}
}

// TestTreeLargeWindow crosses the in-memory window, so old hashes come
// from the file.
func TestTreeLargeWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 40k-leaf tree")
	}
	tr, leaves := buildTree(t, 40000)
	require.Positive(t, tr.hs.memBase, "old hashes were evicted to the file")
	for _, c := range [][3]int{{40000, 1, 0}, {40000, 33333, 12345}, {39999, 16384, 39998}, {32769, 32768, 7}} {
		checkAgainstOracle(t, tr, leaves, c[0], c[1], c[2])
	}
	info, err := os.Stat(filepath.Join(filepath.Dir(tr.hs.f.Name()), hashesName))
	require.NoError(t, err)
	assert.Equal(t, tlog.StoredHashCount(40000)*tlog.HashSize, info.Size())
}

func FuzzProofs(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint8(0))
	f.Add(uint8(7), uint8(3), uint8(6))
	f.Add(uint8(64), uint8(33), uint8(40))
	f.Add(uint8(200), uint8(128), uint8(129))
	tr, leaves := buildTree(f, 255)
	f.Fuzz(func(t *testing.T, n, m, i uint8) {
		if n == 0 {
			return
		}
		m = 1 + m%n
		i %= n
		checkAgainstOracle(t, tr, leaves, int(n), int(m), int(i))
	})
}

func nonNil[S ~[]tlog.Hash](s S) []tlog.Hash { return append([]tlog.Hash{}, s...) }
