package fhirserver

import (
	"encoding/json"
	"net/http"
	"unicode/utf8"
)

type outcomeIssue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics"`
	Expression  []string `json:"expression,omitempty"`
}

type operationOutcome struct {
	ResourceType string         `json:"resourceType"`
	Issue        []outcomeIssue `json:"issue"`
}

// fail answers with an OperationOutcome. code is from the FHIR IssueType
// value set; msg is a fixed text that never echoes request values.
func (s *Server) fail(w http.ResponseWriter, status int, code, msg string) {
	s.failAt(w, status, code, msg, "")
}

// failAt is fail with the FHIRPath of the element at fault ("" for none).
func (s *Server) failAt(w http.ResponseWriter, status int, code, msg, expr string) {
	issue := outcomeIssue{Severity: "error", Code: code, Diagnostics: msg}
	if expr != "" {
		issue.Expression = []string{expr}
	}
	s.writeRaw(w, status, marshalOutcome(operationOutcome{
		ResourceType: "OperationOutcome", Issue: []outcomeIssue{issue}}))
}

func marshalOutcome(oo operationOutcome) []byte {
	body, err := json.Marshal(oo)
	if err != nil { // unreachable: the value holds only strings
		return []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception"}]}`)
	}
	return body
}

// appendJSONString appends s as a JSON string, escaping like encoding/json
// (HTML-safe, invalid UTF-8 replaced by U+FFFD).
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
