package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// seeCheck points the operator from a log line to the full text.
const seeCheck = "details: `chartguard policy check` on the policy, or the audit event"

// LogSafe is err, an error of this package, as the operational log
// (stderr) may show it.
//
// Security: the full text of a load or evaluation error can quote the
// policy's source and data, and the input: a Rego parse error prints the
// offending line, a load_errors message or a conflict between rule values
// quotes data keys and values, and these include patient and user ids
// (vip_patients, care_teams). The log gets the error's class, its Rego
// locations and codes, and the text only of errors known to quote
// nothing but file names, sizes and the network (an unreadable file, a
// bundle download). Everything else is left out: the admin's reload
// answer, the audit event and `chartguard policy check` give it in full.
func LogSafe(err error) string {
	var ce *contentError
	if !errors.As(err, &ce) {
		if err == nil {
			return ""
		}
		return err.Error() // a config error or a bundle download's: no content
	}
	var (
		le *loadErrors
		ae ast.Errors
		fe loader.Errors
		ee *evalError
		pe *fs.PathError
	)
	switch {
	case errors.As(err, &le):
		return fmt.Sprintf("%s (%d); %s", ErrLoadErrors, len(le.msgs), seeCheck)
	case errors.As(err, &ae):
		return fmt.Sprintf("policy: %d Rego error(s): %s; %s", len(ae), where(ae), seeCheck)
	case errors.As(err, &fe):
		return fmt.Sprintf("policy: %d error(s) loading: %s; %s", len(fe), where(fe), seeCheck)
	case errors.As(err, &ee):
		return fmt.Sprintf("%s: %s%s", ErrEval, ee.code, ee.where)
	case errors.As(err, &pe):
		return "policy: " + pe.Error()
	}
	for _, s := range []error{errBundleDownload, errNoBundle, errTooLarge, ErrNoModules, ErrNoRule, ErrTimeout, ErrInput, ErrUndefined} {
		if errors.Is(err, s) {
			return err.Error()
		}
	}
	at := ""
	if where := locations(err); len(where) > 0 {
		at = " at " + strings.Join(where, ", ")
	}
	for _, s := range []error{ErrTestsFailed, ErrShape, ErrRedactPath, ErrEval, errRevisionReused, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, s) {
			return s.Error() + at + "; " + seeCheck
		}
	}
	return "policy refused" + at + "; " + seeCheck
}

// locError is an error at a place in the policy (file:line, or a data
// key path such as "data vip.redact[0]"): the place is safe to log, the
// error may not be.
type locError struct {
	where string
	err   error
}

func (e *locError) Error() string { return e.where + ": " + e.err.Error() }
func (e *locError) Unwrap() error { return e.err }

// locations lists the places of the locErrors in err's tree, at most
// maxLoadErrors of them.
func locations(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		if err == nil || len(out) == maxLoadErrors {
			return
		}
		if le, ok := err.(*locError); ok {
			out = append(out, le.where)
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// contentError marks an error from reading, compiling, testing or
// evaluating a policy: its text may quote the policy and its data.
type contentError struct{ err error }

func (e *contentError) Error() string { return e.err.Error() }
func (e *contentError) Unwrap() error { return e.err }

// content marks err (if any) as a [contentError].
func content(err error) error {
	if err == nil {
		return nil
	}
	return &contentError{err}
}

// where lists the locations and codes of errs (Rego errors), or the file
// and kind of error (loader errors: "data.json: merge error"), not their
// messages.
func where[E error](errs []E) string {
	var b strings.Builder
	for i, err := range errs {
		if i == maxLoadErrors {
			fmt.Fprintf(&b, ", and %d more", len(errs)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		var e *ast.Error
		switch {
		case errors.As(err, &e) && e.Location != nil:
			fmt.Fprintf(&b, "%s:%d: %s", e.Location.File, e.Location.Row, e.Code)
		case e != nil:
			b.WriteString(e.Code)
		default:
			parts := strings.SplitN(err.Error(), ": ", 3)
			b.WriteString(strings.Join(parts[:min(len(parts), 2)], ": "))
		}
	}
	return b.String()
}

// evalError is an evaluation error of the policy (OPA's topdown.Error):
// its code and location, and the message, which may quote values.
type evalError struct {
	code, where, msg string
}

func newEvalError(te *topdown.Error) *evalError {
	e := &evalError{code: te.Code, msg: te.Message}
	if te.Location != nil {
		e.where = " at " + te.Location.String()
	}
	return e
}

func (e *evalError) Error() string {
	if e.msg == "" {
		return e.code + e.where
	}
	return e.code + e.where + ": " + e.msg
}
