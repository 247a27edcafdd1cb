//go:build unix

package medplum

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// basePath is the FHIR base the server is started with.
	basePath = "/fhir"

	// startTimeout bounds the wait for "LISTENING <port>". Indexing the FHIR
	// definitions takes about a second; the margin is for loaded CI machines.
	startTimeout = 60 * time.Second

	// npmTimeout bounds "npm ci". It is also the longest another test binary
	// can hold the install lock, so waiting for the lock is bounded too.
	npmTimeout = 5 * time.Minute

	// stopTimeout is how long the server gets to exit after SIGTERM before
	// its process group is killed.
	stopTimeout = 10 * time.Second

	// maxLogBytes caps the node output kept for failure reports.
	maxLogBytes = 64 << 10
)

var (
	errNoProject = errors.New("e2e/medplum/server.mjs not found")
	errBadLine   = errors.New("malformed LISTENING line")
)

// Server is a running Medplum FHIR server. Its fields are read-only.
type Server struct {
	// URL is the server's origin, e.g. "http://127.0.0.1:41234".
	URL string
	// Base is the FHIR base path, "/fhir".
	Base string
}

// FHIRURL returns the FHIR base URL, e.g. "http://127.0.0.1:41234/fhir".
func (s *Server) FHIRURL() string { return s.URL + s.Base }

// Start starts a fresh, empty Medplum FHIR server on a free loopback port and
// stops it (and its process group) when t ends. It installs the pinned node
// modules first if they are missing or older than package-lock.json. It
// fails t when node or npm are missing, the install fails, or the server is
// not listening within 60 s. Node's output is logged only if t fails.
func Start(t testing.TB) *Server {
	t.Helper()
	dir, err := projectDir()
	if err != nil {
		t.Fatalf("medplum: %v", err)
	}
	node := lookPath(t, "node")
	npm := lookPath(t, "npm")
	if err := ensureModules(dir, npm); err != nil {
		t.Fatalf("medplum: %v", err)
	}

	began := time.Now()
	p, err := launch(node, dir)
	if err != nil {
		t.Fatalf("medplum: start node: %v", err)
	}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("medplum: stop: %v", err)
		}
		if t.Failed() {
			for _, line := range p.output.lines() {
				t.Log("medplum: " + line)
			}
		}
	})

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case port := <-p.ready:
		srv := &Server{URL: "http://127.0.0.1:" + strconv.Itoa(port), Base: basePath}
		t.Logf("medplum: %s ready in %s", srv.FHIRURL(), time.Since(began).Round(time.Millisecond))
		return srv
	case <-p.exited:
		t.Fatalf("medplum: node exited before listening: %v", p.waitErr)
	case <-timer.C:
		t.Fatalf("medplum: no LISTENING line within %s", startTimeout)
	}
	return nil // unreachable: Fatalf stops the goroutine
}

func lookPath(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("medplum: %s not found on PATH (%v): the e2e tests need Node.js 20+ and npm; "+
			"install them (Debian: apt-get install nodejs npm) instead of skipping", name, err)
	}
	return path
}

// projectDir finds e2e/medplum: next to this source file, or, when paths are
// trimmed (-trimpath), above the working directory of the test binary.
func projectDir() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Join(filepath.Dir(file), "..", "..", "medplum")
		if isFile(filepath.Join(dir, "server.mjs")) {
			return dir, nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("%w: %w", errNoProject, err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		candidate := filepath.Join(dir, "e2e", "medplum")
		if isFile(filepath.Join(candidate, "server.mjs")) {
			return candidate, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("%w above %s", errNoProject, wd)
		}
	}
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// ensureModules runs "npm ci" in dir unless node_modules is complete and
// newer than package-lock.json. An exclusive flock on dir/.npm-ci.lock keeps
// test binaries of other packages, running in parallel, from installing at
// the same time (npm ci deletes node_modules first).
func ensureModules(dir, npm string) error {
	lock, err := os.OpenFile(filepath.Join(dir, ".npm-ci.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("install lock: %w", err)
	}
	defer lock.Close()
	fd := int(lock.Fd())
	if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("install lock: %w", err)
	}
	defer func() { _ = syscall.Flock(fd, syscall.LOCK_UN) }() // Close would release it too

	if modulesCurrent(dir) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm ci in %s: %w\n%s", dir, err, out)
	}
	if !modulesCurrent(dir) {
		return fmt.Errorf("npm ci in %s succeeded but node_modules is incomplete\n%s", dir, out)
	}
	return nil
}

// modulesCurrent reports whether npm finished installing (it writes
// node_modules/.package-lock.json last) from the current package-lock.json.
func modulesCurrent(dir string) bool {
	want, err := os.Stat(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return false
	}
	got, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	if err != nil || got.ModTime().Before(want.ModTime()) {
		return false
	}
	for _, pkg := range []string{"core", "definitions", "fhir-router"} {
		if !isFile(filepath.Join(dir, "node_modules", "@medplum", pkg, "package.json")) {
			return false
		}
	}
	return true
}

// process is a running server.mjs.
type process struct {
	cmd    *exec.Cmd
	stdin  *os.File      // write end of node's stdin; closing it makes node exit
	ready  chan int      // receives the port once
	exited chan struct{} // closed after Wait returns; then waitErr is set
	output *logBuffer

	waitErr  error
	stopOnce sync.Once
	stopErr  error
}

func launch(node, dir string) (*process, error) {
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer stdinR.Close()

	p := &process{
		stdin:  stdinW,
		ready:  make(chan int, 1),
		exited: make(chan struct{}),
		output: &logBuffer{max: maxLogBytes},
	}
	cmd := exec.Command(node, "--experimental-websocket", "server.mjs", "0")
	cmd.Dir = dir
	// EXIT_ON_STDIN_EOF: if this test binary dies without running cleanups,
	// the pipe closes and node exits instead of lingering.
	cmd.Env = append(os.Environ(), "FHIR_BASE="+basePath, "EXIT_ON_STDIN_EOF=1")
	cmd.Stdin = stdinR
	cmd.Stdout = &stdoutWatcher{ready: p.ready, log: p.output}
	cmd.Stderr = p.output
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = stopTimeout // don't hang on a grandchild holding our pipes
	if err := cmd.Start(); err != nil {
		stdinW.Close()
		return nil, err
	}
	p.cmd = cmd
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop sends SIGTERM to the process group, closes stdin, and kills the group
// if node has not exited within stopTimeout.
func (p *process) stop() error {
	p.stopOnce.Do(func() {
		pgid := p.cmd.Process.Pid // Setpgid: the group id is node's pid
		signalGroup(pgid, syscall.SIGTERM)
		p.stdin.Close()
		timer := time.NewTimer(stopTimeout)
		defer timer.Stop()
		select {
		case <-p.exited:
		case <-timer.C:
			signalGroup(pgid, syscall.SIGKILL)
			<-p.exited
			p.stopErr = fmt.Errorf("node ignored SIGTERM for %s; killed", stopTimeout)
		}
		// Children node may have started share the group; make sure none survive.
		signalGroup(pgid, syscall.SIGKILL)
	})
	return p.stopErr
}

func signalGroup(pgid int, sig syscall.Signal) {
	// ESRCH (group already gone) is the expected outcome, not an error.
	_ = syscall.Kill(-pgid, sig)
}

// stdoutWatcher copies node's stdout into the log and reports the port of
// the first "LISTENING <port>" line.
type stdoutWatcher struct {
	ready   chan<- int
	log     io.Writer
	partial []byte
	seen    bool
}

func (w *stdoutWatcher) Write(b []byte) (int, error) {
	_, _ = w.log.Write(b)
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		if w.seen || !strings.HasPrefix(line, "LISTENING ") {
			continue
		}
		if port, err := parseListening(line); err == nil {
			w.seen = true
			w.ready <- port
		}
	}
	if len(w.partial) > maxLogBytes { // a runaway line without newline
		w.partial = w.partial[:0]
	}
	return len(b), nil
}

// parseListening parses exactly "LISTENING <port>" with a port in 1..65535.
func parseListening(line string) (int, error) {
	text, ok := strings.CutPrefix(strings.TrimSuffix(line, "\r"), "LISTENING ")
	if !ok {
		return 0, errBadLine
	}
	port, err := strconv.Atoi(text)
	if err != nil || port < 1 || port > 65535 || strconv.Itoa(port) != text {
		return 0, fmt.Errorf("%w: %q", errBadLine, line)
	}
	return port, nil
}

// logBuffer keeps the last max bytes written to it. Safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (l *logBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	if over := len(l.buf) - l.max; over > 0 {
		l.buf = append(l.buf[:0], l.buf[over:]...)
	}
	return len(b), nil
}

func (l *logBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	text := strings.TrimRight(string(l.buf), "\n")
	if text == "" {
		return nil
	}
	return strings.Split(text, "\n")
}
