package session

// matchGlob reports whether name matches pattern, where "*" matches any run
// of bytes ("/" included) and every other byte matches itself. Matching a
// background pattern only ever makes a request not count as activity, so
// matching too much shortens sessions; it never lengthens them.
//
// It runs in O(len(pattern)·len(name)) at worst, with both lengths bounded
// (patterns by config validation, paths by the proxy's target limit).
func matchGlob(pattern, name string) bool {
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case star >= 0:
			mark++
			p, n = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
