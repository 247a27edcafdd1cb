package audit

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// cpJob is a checkpoint to sign: the tree's size and root, its hashes
// already written to the hashes file.
type cpJob struct {
	size int64
	root tlog.Hash
}

// request signs a checkpoint of the current tree if records were added
// since the last one, logging a failure (the next request retries).
func (c *chain) request() {
	if c.broken != nil || c.tree.size == 0 || c.tree.size <= c.signed.Load() {
		return
	}
	c.checkpointLogged()
}

// prepare makes the records durable (a non-durable log), writes the
// hashes and computes the root (writer goroutine).
func (c *chain) prepare() (cpJob, error) {
	if err := c.syncRecords(); err != nil {
		return cpJob{}, err
	}
	if err := c.tree.hs.flush(); err != nil {
		return cpJob{}, err
	}
	root, err := c.tree.root()
	if err != nil {
		return cpJob{}, fmt.Errorf("tree root: %w", err)
	}
	return cpJob{size: c.tree.size, root: root}, nil
}

// checkpoint signs the current tree (writer goroutine, before the batch
// that made it due is answered: with checkpoint_every 1 every acknowledged
// record is covered by a signed checkpoint).
func (c *chain) checkpoint() error {
	if c.broken != nil {
		return fmt.Errorf("tree behind the records: %w", c.broken)
	}
	if c.tree.size == 0 || (c.haveCP.Load() && c.tree.size == c.signed.Load()) {
		return nil
	}
	job, err := c.prepare()
	if err != nil {
		return err
	}
	c.requested = job.size
	return c.sign(job)
}

func (c *chain) checkpointLogged() {
	if err := c.checkpoint(); err != nil {
		c.cpFailed()
		c.logger.Error("audit checkpoint failed; retrying at the next one", "err", err)
	}
}

// sign fsyncs the hashes, signs the checkpoint and appends it to the
// checkpoints file (fsynced) and to the extra sinks. A checkpoint never
// covers a record or hash that a crash could take back: the records were
// fsynced before they were acknowledged (or by prepare), the hashes here.
func (c *chain) sign(job cpJob) error {
	if c.haveCP.Load() && job.size <= c.signed.Load() {
		return nil
	}
	if err := c.tree.hs.f.Sync(); err != nil {
		return fmt.Errorf("fsync hashes: %w", err)
	}
	msg, err := signCheckpoint(Checkpoint{Origin: c.origin, Size: job.size, Root: job.root}, c.signer)
	if err != nil {
		return fmt.Errorf("sign checkpoint: %w", err)
	}
	line := marshalLogLine(kindCheckpoint, string(msg))
	if err := c.appendLine(line); err != nil {
		return err
	}
	c.signed.Store(job.size)
	c.haveCP.Store(true)
	c.unsigned.Store(0)
	c.toSinks(line)
	return nil
}

// appendLine appends one line to the checkpoints file and fsyncs it. A
// failed write is cut off again so the file stays whole
// lines.
func (c *chain) appendLine(line []byte) error {
	info, err := c.cpFile.Stat()
	if err != nil {
		return fmt.Errorf("stat checkpoints: %w", err)
	}
	if _, err := c.cpFile.WriteAt(line, info.Size()); err != nil {
		_ = c.cpFile.Truncate(info.Size())
		return fmt.Errorf("write checkpoints: %w", err)
	}
	if err := c.cpFile.Sync(); err != nil {
		return fmt.Errorf("fsync checkpoints: %w", err)
	}
	return nil
}
