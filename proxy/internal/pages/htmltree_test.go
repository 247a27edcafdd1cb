package pages

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// node is a minimal element tree. The pages are written as well-formed
// XHTML-style markup, so a strict encoding/xml parse doubles as a
// well-formedness check (no x/net/html in go.mod).
type node struct {
	Name     string
	Attr     map[string]string
	Children []*node
	text     strings.Builder
}

// Text is the element's text content, its descendants' included.
func (n *node) Text() string { return strings.Join(strings.Fields(n.text.String()), " ") }

func (n *node) all(name string) []*node {
	var out []*node
	var walk func(*node)
	walk = func(m *node) {
		for _, c := range m.Children {
			if c.Name == name {
				out = append(out, c)
			}
			walk(c)
		}
	}
	walk(n)
	return out
}

func (n *node) one(t *testing.T, name string) *node {
	t.Helper()
	got := n.all(name)
	require.Len(t, got, 1, "want exactly one <%s>", name)
	return got[0]
}

func parseHTML(t *testing.T, body string) *node {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(body))
	dec.Strict = true
	root := &node{Name: "#document"}
	stack := []*node{root}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "page is not well-formed")
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &node{Name: tok.Name.Local, Attr: map[string]string{}}
			for _, a := range tok.Attr {
				n.Attr[a.Name.Local] = a.Value
			}
			top := stack[len(stack)-1]
			top.Children = append(top.Children, n)
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			for _, n := range stack {
				n.text.Write(tok)
				n.text.WriteByte(' ')
			}
		}
	}
	require.Len(t, stack, 1, "unclosed elements")
	return root
}
