package fhirserver

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// gzipWriter marks the ResponseWriter of a request whose client accepts
// gzip; writeBody compresses what it writes through it. ServeHTTP installs
// it for every method but HEAD: like nginx, a HEAD answer describes the
// identity representation (a gzip header on a bodyless answer would
// announce a gzip stream that is not there). ETags are weak (W/"n"), so
// both encodings share them.
type gzipWriter struct{ http.ResponseWriter }

// Unwrap lets http.ResponseController reach the underlying writer.
func (g *gzipWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// gzipCodec holds a server's reusable compressors and output buffers.
type gzipCodec struct {
	writers sync.Pool // *gzip.Writer
	bufs    sync.Pool // *bytes.Buffer
}

func newGzipCodec() *gzipCodec {
	return &gzipCodec{
		writers: sync.Pool{New: func() any {
			// BestSpeed is nginx's default gzip_comp_level (1); the
			// level is a valid constant, so there is no error.
			zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
			return zw
		}},
		bufs: sync.Pool{New: func() any { return new(bytes.Buffer) }},
	}
}

// writeBody writes status and body with its Content-Length (contentLength,
// if precomputed for body) and "Vary: Accept-Encoding". Through a
// gzipWriter a non-empty body is gzip-compressed, and Content-Length is the
// compressed length.
func (s *Server) writeBody(w http.ResponseWriter, status int, body []byte, contentLength []string) {
	h := w.Header()
	if len(h["Vary"]) == 0 {
		h["Vary"] = s.vary
	} else {
		h.Add("Vary", "Accept-Encoding") // keep what a wrapping handler set
	}
	if gw, ok := w.(*gzipWriter); ok && len(body) > 0 {
		s.writeGzip(gw.ResponseWriter, status, body)
		return
	}
	if contentLength == nil {
		contentLength = []string{strconv.Itoa(len(body))}
	}
	h["Content-Length"] = contentLength
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) writeGzip(w http.ResponseWriter, status int, body []byte) {
	buf := s.gzip.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	zw := s.gzip.writers.Get().(*gzip.Writer)
	zw.Reset(buf)
	// Writes into a bytes.Buffer cannot fail.
	_, _ = zw.Write(body)
	_ = zw.Close()
	zw.Reset(io.Discard) // drop the reference to buf before pooling
	s.gzip.writers.Put(zw)

	h := w.Header()
	h["Content-Encoding"] = s.contentEncoding
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
	if buf.Cap() <= maxPooledBuffer {
		s.gzip.bufs.Put(buf)
	}
}

// acceptsGzip reports whether r's Accept-Encoding accepts gzip (RFC 9110
// 12.5.3): "gzip" or "x-gzip" with q > 0, or else "*" with q > 0. An absent
// header, "identity", q=0 or a malformed q do not.
func acceptsGzip(r *http.Request) bool {
	gzipQ, starQ := -1.0, -1.0
	for _, h := range r.Header.Values("Accept-Encoding") {
		for elem := range strings.SplitSeq(h, ",") {
			coding, params, _ := strings.Cut(elem, ";")
			q, ok := qValue(params)
			if !ok {
				continue
			}
			switch strings.ToLower(strings.TrimSpace(coding)) {
			case "gzip", "x-gzip":
				gzipQ = max(gzipQ, q)
			case "*":
				starQ = max(starQ, q)
			}
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return starQ > 0
}

// qValue parses the parameters of an Accept-Encoding element: "" is q=1,
// "q=0.5" is 0.5. Other parameters or a q outside [0, 1] are not valid.
func qValue(params string) (float64, bool) {
	params = strings.TrimSpace(params)
	if params == "" {
		return 1, true
	}
	name, val, ok := strings.Cut(params, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(name), "q") {
		return 0, false
	}
	val = strings.TrimSpace(val)
	if val == "" || len(val) > 5 || (val[0] != '0' && val[0] != '1') {
		return 0, false
	}
	q, err := strconv.ParseFloat(val, 64)
	if err != nil || q < 0 || q > 1 {
		return 0, false
	}
	return q, true
}
