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
// A segment also rotates when its first record is older than
// [SegmentConfig.MaxAge] (checked when a record is written).
//
// # Verifiable log
//
// Every record (its JSON line without the '\n') is leaf seq of an RFC 6962
// Merkle tree; the tree math is golang.org/x/mod/sumdb/tlog. The tree's
// stored hashes (tlog numbering, 32 bytes each, about two per record) are
// in the file "hashes", written in the same group commit after the
// records' fsync and fsynced before each checkpoint. Every
// [Config.CheckpointEvery] records, every [Config.CheckpointInterval] while
// records arrive, at startup after a crash and at [Log.Close], the node
// signs a checkpoint: a C2SP tlog-checkpoint body ("<origin>\n<size>\n<base64
// root>\n", origin [Config.Origin] = "<public_url host>/audit/<node>") as
// an Ed25519 signed note (golang.org/x/mod/sumdb/note) with the key in
// [Config.SigningKeyFile]. Checkpoints are appended, fsynced, to the file
// "checkpoints" as JSON lines {"v":1,"kind":"checkpoint","checkpoint":"<note>"},
// and the same line goes to the extra sinks so a copy lives off the box
// (it may reach a sink before the last events it covers). At startup
// every checkpoint and retention note is verified with the node's key and
// origin, the stored hashes a checkpoint covers are checked against it and
// the rest are recomputed from the records and compared with the stored
// hashes still present, so a crash loses nothing the segments hold; a
// mismatch, a record whose seq is not its position or stored hashes for
// records the segments no longer hold refuse the start ([ErrCorrupt]),
// so a restart never signs a tampered history. A non-durable log signs
// no checkpoint over records it could not fsync. [Verify] checks a directory ([ReadDir] only reads it); [Prove] and
// [VerifyProof] make and check self-contained inclusion proofs.
//
// # Retention
//
// With [Config.Retention], whole segments whose last write is older, and
// that a checkpoint covers, are removed oldest first (at startup and at
// each rotation). First a signed retention note ({"v":1,"kind":"retention",
// "note":…}, body "chartguard audit retention v1\n<origin>\n<first kept>\n")
// is appended to "checkpoints" and sent to the sinks; the stored hashes of
// removed records stay, so the checkpoints and proofs still verify. A
// segment missing without such a note is tampering.
//
// # Queries
//
// [Searcher] ([OpenSearcher]) answers search, report and tail over one or
// more log directories, merged by time, each verified against its own
// checkpoints. A bbolt index per directory in audit.index_dir (a
// rebuildable cache) holds each patient's events reduced to that patient;
// each query verifies only the records added since the last one (compact
// range and RFC 6962 consistency proof from the stored hashes) and
// rebuilds the index when the log was replaced. Offline reads of a copy
// record a signed offline-access note in the copy.
//
// # Free space
//
// [Log.DiskReady] fails under [Config.MinFree] (for /readyz);
// chartguard_audit_disk_free_bytes and chartguard_audit_checkpoint_age_seconds
// (age of the oldest record no checkpoint covers) are exported.
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
// Verification trusts only the checkpoint key. Someone who can write the
// directory but lacks the key may edit, delete, insert, reorder or cut
// records or segments, rewrite the hashes and drop checkpoints; [Verify]
// reports the first index affected. The exception: records after the last
// local checkpoint, cut together with the checkpoints that cover them,
// are only caught against an off-box checkpoint ([VerifyOptions.Trusted],
// from the stdout sink or a SIEM). A holder of the key can sign anything;
// two checkpoints of one size with different roots (a split view) are
// caught when both are seen. The stored hashes of records removed by
// retention are trusted as far as the checkpoints vouch for them.
//
// # Out of scope
//
// Syslog and FHIR-format sinks, key rotation (a new key needs a new
// audit.dir or a verifier holding both keys), and serving HTTP.
package audit
