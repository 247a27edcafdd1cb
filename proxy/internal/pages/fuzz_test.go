package pages

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzRender: whatever the inputs, every page is well-formed, at most
// 30 KB, carries no markup from the inputs, and links only to local paths.
func FuzzRender(f *testing.F) {
	f.Add("Dr. Ada", "tok", "req-1", "idle", "/.chartguard/login", "Not your patient.")
	f.Add(hostile, `"><b>`, "\xff\x00", "absolute", "//evil.example", "</li><script>")
	f.Add("", "", "", "", "javascript:alert(1)", "")
	p := newPages(f)
	f.Fuzz(func(t *testing.T, user, csrf, requestID, reason, link, text string) {
		d := Data{User: user, CSRF: csrf, RequestID: requestID}
		for _, render := range []renderFunc{
			func(p *Pages, w http.ResponseWriter, d Data) { p.LoggedOff(w, d, reason, link) },
			func(p *Pages, w http.ResponseWriter, d Data) { p.SubmissionNotSaved(w, d, link) },
			func(p *Pages, w http.ResponseWriter, d Data) { p.AccessDenied(w, d, []string{text, reason}) },
			func(p *Pages, w http.ResponseWriter, d Data) { p.Error(w, d, len(text)+400, text) },
			func(p *Pages, w http.ResponseWriter, d Data) { p.LogoutConfirm(w, d) },
			func(p *Pages, w http.ResponseWriter, d Data) { p.LoginFailed(w, d, text, link) },
		} {
			w := httptest.NewRecorder()
			render(p, w, d)
			require.LessOrEqual(t, w.Body.Len(), maxPageBytes)
			doc := parseHTML(t, w.Body.String())
			require.Empty(t, doc.all("script"))
			doc.one(t, "h1")
			for _, a := range doc.all("a") {
				href := a.Attr["href"]
				assert.True(t, strings.HasPrefix(href, "/") && !strings.HasPrefix(href, "//"), "href %q", href)
			}
		}
	})
}
