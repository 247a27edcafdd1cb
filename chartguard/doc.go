// Package chartguard holds the types every ChartGuard package speaks: the
// verified [Identity] of a caller, the classification of a request
// ([Resource]), the policy contract ([Input] and [Decision]) and the audit
// record ([Event]).
//
// It imports no other ChartGuard package and does no I/O. The JSON field
// names are contracts (../shared/DESIGN.md): policy authors read Input and
// write Decision; auditors read Event. Extend them, never rename.
package chartguard
