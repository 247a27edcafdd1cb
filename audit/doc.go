// Package audit owns the audit trail: it turns a [chartguard.Event] into one
// durable, ordered JSON line in an append-only file log, copies it to extra
// sinks (stdout today) and decides what happens when the log cannot be
// written (fail closed by default).
//
// # File log
//
// [Log] writes records to segment files named audit-<first seq>.log (20
// zero-padded digits, so lexical order is log order) in [Config.Dir], one
// JSON object per line, and rotates to a new segment at
// [SegmentConfig.MaxBytes]. Sequence numbers are dense and monotonic from 0
// across segments and restarts: [New] reads the last record of the last
// segment to find the next one. A single writer goroutine assigns sequence
// numbers, writes everything pending with one write call and, when
// [Config.Durable] is set, one fsync for the whole batch (group commit).
// Under concurrent load it may hold a batch open for up to
// [Config.CommitDelay] so that more events share that fsync; a sequential
// caller is never delayed. A durable log writes into space it zero-filled
// ahead of its records (so an fsync flushes data, not the file size): the
// records of a segment end at its first NUL byte ([SegmentData]), and a
// closed or rotated segment has no zero tail.
// Later the records become the leaves of an RFC 6962 Merkle tree with signed
// checkpoints; nothing here rewrites an acknowledged record, so that is an
// extension, not a format change.
//
// # Failure and recovery
//
// When a write or fsync fails the segment is closed and the batch is
// reported as failed. Before the next attempt the segment is truncated back
// to its last acknowledged record: bytes of a failed batch (complete or
// partial lines) were never acknowledged, so they are removed instead of
// being left as records that claim an outcome the client never saw, and
// their sequence numbers are reused, keeping the log dense. The same rule
// trims a partial last line left by a crash at startup; complete lines a
// crash left behind are kept (they over-report, never under-report).
// With [Config.FailClosed] the caller gets an error wrapping
// [ErrUnavailable] and must refuse the request and [Log.Defer] the amended
// event; otherwise Commit defers the event itself. Deferred events go to the
// extra sinks at once and to a bounded queue written, in order, before
// anything else once the file is writable again. Drops are counted in
// chartguard_audit_events_lost_total.
//
// # Trust boundary
//
// Events come from ChartGuard's own pipeline and are trusted to hold
// identifiers only (never tokens or clinical content); this package fills
// the envelope (v, id, time, seq, node, count) and caps the patient list, but
// does not judge the content. The directory is trusted to be written only by
// this process: it must not be accessible to group or others. Operational
// logs written here never carry event content.
//
// # Out of scope
//
// Merkle hashing and checkpoints, reading, searching and reporting on the
// log, retention, free-space checks, syslog and FHIR-format sinks, and
// serving HTTP.
package audit
