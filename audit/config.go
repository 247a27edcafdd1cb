package audit

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Defaults applied by [Config.SetDefaults] and, for zero numeric fields, by
// [New].
const (
	DefaultMaxPatientsPerEvent = 1000
	DefaultSegmentMaxBytes     = 256 << 20
	DefaultQueueSize           = 10000
	// DefaultCommitDelay is [Config.CommitDelay] after SetDefaults,
	// chosen by measurement (bench/README.md).
	DefaultCommitDelay = time.Millisecond
	// DefaultCheckpointEvery and DefaultCheckpointInterval bound how many
	// records and how long a record waits before a signed checkpoint
	// covers it.
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = 10 * time.Second
	// DefaultRetention is how long segments are kept (DESIGN.md).
	DefaultRetention = "10y"
	// DefaultSegmentMaxAge starts a new segment at least daily.
	DefaultSegmentMaxAge = 24 * time.Hour
	// DefaultMinFree is the free space under which /readyz fails.
	DefaultMinFree = 5 << 30
)

// Sink types and formats accepted in [SinkConfig].
const (
	SinkStdout = "stdout"
	FormatJSON = "json"
)

// Config configures a [Log]. The yaml tags are the DESIGN.md "audit" keys.
type Config struct {
	// Dir holds the segment files. Required. Created with mode 0700; an
	// existing directory with any group or other permission is refused.
	Dir string `yaml:"dir"`
	// Durable makes Commit return only after the batch holding the event
	// is fsynced. Default true (see SetDefaults).
	Durable bool `yaml:"durable"`
	// FailClosed makes Commit return an error wrapping ErrUnavailable when
	// the file log cannot be written. If false, Commit defers the event and
	// returns nil. Default true (see SetDefaults).
	FailClosed bool `yaml:"fail_closed"`
	// MaxPatientsPerEvent caps Resource.Patients; longer lists are cut and
	// PatientsTruncated is set. If zero, 1000.
	MaxPatientsPerEvent int `yaml:"max_patients_per_event"`
	// Sinks are extra destinations for every event. Only
	// {type: stdout, format: json} exists yet.
	Sinks []SinkConfig `yaml:"sinks"`
	// Segment controls rotation.
	Segment SegmentConfig `yaml:"segment"`
	// IndexDir holds the query index (a rebuildable cache; see query_search.go). If empty, the proxy uses Dir + "-index".
	IndexDir string `yaml:"index_dir"`
	// SigningKeyFile holds the note signer key (golang.org/x/mod/sumdb/note
	// format, "PRIVATE+KEY+<name>+<hash>+<key>"; `chartguard audit keygen`
	// writes one) that signs checkpoints. Required unless Signer is set or
	// EphemeralKey allows a throwaway key.
	SigningKeyFile string `yaml:"signing_key_file"`
	// CheckpointEvery is how many records at most go unsigned: a checkpoint
	// is written when this many records were added since the last one.
	// If zero, 1000.
	CheckpointEvery int `yaml:"checkpoint_every"`
	// CheckpointInterval is the longest a record waits for a checkpoint.
	// If zero, 10s.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// Retention is how long segments are kept, in Go duration syntax or
	// with a d (day) or y (365 days) unit: "10y", "90d", "720h". Whole
	// segments whose newest record is older are removed once a checkpoint
	// covers them; their tree hashes are kept. Empty or "0": keep
	// everything. SetDefaults sets 10y.
	Retention string `yaml:"retention"`
	// MinFree is the free space on the file system of Dir under which
	// [Log.DiskReady] fails (so /readyz drains the replica before the disk
	// fills). SetDefaults sets 5GiB; 0 disables the check.
	MinFree int64 `yaml:"min_free"`

	// Origin is the checkpoint origin line, "<public_url host>/audit/<node>";
	// the proxy sets it. If empty, "localhost/audit/<Node>".
	Origin string `yaml:"-"`
	// Signer signs checkpoints. If nil, New loads SigningKeyFile.
	Signer note.Signer `yaml:"-"`
	// EphemeralKey lets New generate a throwaway signing key when neither
	// Signer nor SigningKeyFile is set, with a loud warning. Such a log
	// cannot be verified after the process exits; the proxy allows it only
	// with session.insecure_dev (loopback demos).
	EphemeralKey bool `yaml:"-"`

	// Node is the node id written into every event.
	Node string `yaml:"-"`
	// Now is the clock for event timestamps. If nil, time.Now.
	Now func() time.Time `yaml:"-"`
	// Rand is the source of event ids. If nil, crypto/rand.Reader.
	Rand io.Reader `yaml:"-"`
	// Stdout receives the stdout sink. If nil, os.Stdout.
	Stdout io.Writer `yaml:"-"`
	// OpenSegment opens a segment file for appending. If nil, os.OpenFile
	// with O_APPEND|O_CREATE|O_WRONLY and mode 0600. The log still reads,
	// stats and truncates segments by path on the real file system; this
	// seam exists so tests can inject write and fsync faults.
	OpenSegment func(path string) (SegmentFile, error) `yaml:"-"`
	// QueueSize bounds the in-memory recovery queue. If zero, 10000.
	QueueSize int `yaml:"-"`
	// CommitDelay is the longest a durable batch waits for more events
	// before its write and fsync, like PostgreSQL's commit_delay, so that
	// under concurrent load one fsync serves more events. The writer waits
	// only on evidence of concurrent callers (Pending; without it, recent
	// batches that held or overlapped several commits; or a Commit about to
	// hand over) and stops as soon as that many events are pending; a
	// single sequential caller never waits. Trade-off: an event in a
	// delayed batch is acknowledged up to CommitDelay later, or up to about
	// 1 ms if the process is otherwise idle (the Go runtime's timer
	// resolution then); in return fewer fsyncs cost less CPU under load.
	// SetDefaults sets DefaultCommitDelay; 0 disables it. Not in YAML yet.
	CommitDelay time.Duration `yaml:"-"`
	// Pending, if set, tells the writer how many events its callers will
	// commit soon: requests in progress whose Commit has not returned,
	// including those waiting in Commit. A delayed batch then waits (up to
	// CommitDelay) for that many events instead of for the concurrency it
	// observed itself, which undercounts callers that are still busy
	// elsewhere (waiting for an upstream). A sequential caller reports 1 and
	// never waits. It is called by the writer goroutine and must be cheap
	// and safe for concurrent use. Not in YAML: the proxy sets it.
	Pending func() int `yaml:"-"`
}

// SinkConfig is one extra sink.
type SinkConfig struct {
	Type   string `yaml:"type"`
	Format string `yaml:"format"`
}

// SegmentConfig controls segment rotation.
type SegmentConfig struct {
	// MaxBytes is the size at which a new segment starts. A segment is only
	// larger when a single record is. If zero, 256 MiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxAge starts a new segment when the current one's first record is
	// older (checked when a record is written). 0: no age limit.
	// SetDefaults sets 24h.
	MaxAge time.Duration `yaml:"max_age"`
}

// SetDefaults fills in the defaults. Call it on a fresh Config BEFORE
// decoding YAML into it: it sets Durable and FailClosed to true, which a
// bool cannot tell apart from an explicit false afterwards, so an explicit
// `durable: false` in the file then wins. Called after decoding it still
// errs on the safe side (both true).
func (c *Config) SetDefaults() {
	c.Durable = true
	c.FailClosed = true
	c.CommitDelay = DefaultCommitDelay
	c.Retention = DefaultRetention
	c.Segment.MaxAge = DefaultSegmentMaxAge
	c.MinFree = DefaultMinFree
	c.setNumericDefaults()
	for i := range c.Sinks {
		if c.Sinks[i].Format == "" {
			c.Sinks[i].Format = FormatJSON
		}
	}
}

// setNumericDefaults fills zero numeric fields; New applies it so a Config
// built in Go without SetDefaults still works.
func (c *Config) setNumericDefaults() {
	if c.MaxPatientsPerEvent == 0 {
		c.MaxPatientsPerEvent = DefaultMaxPatientsPerEvent
	}
	if c.Segment.MaxBytes == 0 {
		c.Segment.MaxBytes = DefaultSegmentMaxBytes
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = DefaultCheckpointEvery
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
}

// Validate reports every problem at once, each naming its key path.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("audit.dir: required (e.g. /var/lib/chartguard/audit)"))
	}
	if c.MaxPatientsPerEvent < 0 {
		errs = append(errs, fmt.Errorf("audit.max_patients_per_event: %d is negative; use a positive number or 0 for the default (%d)",
			c.MaxPatientsPerEvent, DefaultMaxPatientsPerEvent))
	}
	if c.Segment.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("audit.segment.max_bytes: %d is negative; use a positive size or 0 for the default (256MiB)",
			c.Segment.MaxBytes))
	}
	if c.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("audit: queue size %d is negative", c.QueueSize))
	}
	if c.CommitDelay < 0 {
		errs = append(errs, fmt.Errorf("audit: commit delay %s is negative; use 0 to disable it", c.CommitDelay))
	}
	for i, s := range c.Sinks {
		errs = append(errs, s.validate(fmt.Sprintf("audit.sinks[%d]", i)))
	}
	if c.SigningKeyFile == "" && c.Signer == nil && !c.EphemeralKey {
		errs = append(errs, errors.New("audit.signing_key_file: required (it signs the log's checkpoints); "+
			"create one with `chartguard audit keygen --out FILE` and keep the printed public key for `audit verify`"))
	}
	if c.CheckpointEvery < 0 {
		errs = append(errs, fmt.Errorf("audit.checkpoint_every: %d is negative; use a positive count such as 1000", c.CheckpointEvery))
	}
	if c.CheckpointInterval < 0 {
		errs = append(errs, fmt.Errorf("audit.checkpoint_interval: %s is negative; use a positive duration such as 10s", c.CheckpointInterval))
	}
	if _, err := ParseRetention(c.Retention); err != nil {
		errs = append(errs, fmt.Errorf("audit.retention: %w", err))
	}
	if c.Segment.MaxAge < 0 {
		errs = append(errs, errors.New("audit.segment.max_age: negative; use a duration such as 24h or 0 for no limit"))
	}
	if c.MinFree < 0 {
		errs = append(errs, errors.New("audit.min_free: negative; use a size such as 5GiB or 0 to disable the check"))
	}
	return errors.Join(errs...)
}

func (s SinkConfig) validate(path string) error {
	switch s.Type {
	case SinkStdout:
	case "syslog":
		return fmt.Errorf("%s.type: %q is not supported yet; remove it or use stdout", path, s.Type)
	case "":
		return fmt.Errorf("%s.type: required (stdout)", path)
	default:
		return fmt.Errorf("%s.type: unknown sink type %q; use stdout", path, s.Type)
	}
	switch s.Format {
	case FormatJSON, "":
		return nil
	case "fhir":
		return fmt.Errorf("%s.format: %q is not supported yet; use json", path, s.Format)
	default:
		return fmt.Errorf("%s.format: unknown format %q; use json", path, s.Format)
	}
}

// ParseRetention parses [Config.Retention]: a Go duration, or a whole
// number of days ("90d") or years of 365 days ("10y"). "" and "0" mean
// keep everything (0).
func ParseRetention(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	var unit time.Duration
	switch {
	case strings.HasSuffix(s, "y"):
		unit = 365 * 24 * time.Hour
	case strings.HasSuffix(s, "d"):
		unit = 24 * time.Hour
	}
	if unit != 0 {
		n, err := strconv.ParseUint(s[:len(s)-1], 10, 32)
		if err != nil || n == 0 || n > 1000*365*24/uint64(unit/time.Hour) {
			return 0, fmt.Errorf("%q is not a retention such as 10y, 90d or 720h", s)
		}
		return time.Duration(n) * unit, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a retention such as 10y, 90d or 720h", s)
	}
	return d, nil
}
