// log.go builds the slog loggers that the logging table of the config describes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// logging owns the log destinations of a config: the console and any files.
// It is safe for concurrent use.
type logging struct {
	cfg    LoggingConfig
	stderr io.Writer
	mu     sync.Mutex // guards files
	files  map[string]*logFile
}

// newLogging opens the destinations of cfg. Console output goes to stderr.
func newLogging(cfg LoggingConfig, stderr io.Writer) (*logging, error) {
	l := &logging{cfg: cfg, stderr: locked(stderr), files: map[string]*logFile{}}
	for _, name := range sortedKeys(cfg.Handlers) {
		h := cfg.Handlers[name]
		if handlerKind(h.Class) != "file" {
			continue
		}
		if _, err := l.file(h.Filename); err != nil {
			l.Close()
			return nil, fmt.Errorf("logging.handlers.%s: %w", name, err)
		}
	}
	return l, nil
}

func (l *logging) file(name string) (*logFile, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f, ok := l.files[name]; ok {
		return f, nil
	}
	f := &logFile{name: name}
	if err := f.reopen(); err != nil {
		return nil, err
	}
	l.files[name] = f
	return f, nil
}

// Close closes the log files.
func (l *logging) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.files {
		f.Close()
	}
}

// Reopen opens every log file again by name, for logrotate's SIGUSR1: lines
// go to the new file from then on. It returns the files that could not be
// reopened; they keep writing to the old file.
func (l *logging) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, name := range sortedKeys(l.files) {
		if err := l.files[name].reopen(); err != nil {
			errs = append(errs, fmt.Errorf("reopen log file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// stdout is standard output shared by every console handler that asks for it.
var stdout io.Writer = &lockedWriter{w: os.Stdout}

// lockedWriter serialises writes of the handlers that share a writer: each
// slog handler locks only itself, and a bytes.Buffer (tests) or a pipe
// must not see two lines at once.
type lockedWriter struct {
	lines lineBatch
	w     io.Writer
}

// locked returns w behind a lock, unless it already is: the loggings of
// two configs alive at once (during a reload) must share one lock.
func locked(w io.Writer) io.Writer {
	if _, ok := w.(*lockedWriter); ok {
		return w
	}
	return &lockedWriter{w: w}
}

func (lw *lockedWriter) Write(b []byte) (int, error) { return lw.lines.write(b, lw.w.Write) }

// lineBatch writes the lines of many goroutines with as few writes as the
// load allows (group commit). A goroutine that finds no write going on
// writes its line at once, and then the lines that came meanwhile, which
// their goroutines left in the batch; so an idle log writes each line as it
// comes and a busy one writes several lines a system call. Lines keep their
// order. The zero value is ready; it is safe for concurrent use.
type lineBatch struct {
	mu      sync.Mutex // guards the fields below
	batch   []byte     // lines waiting for the writing goroutine
	spare   []byte
	writing bool
	drained sync.Cond // signalled when batch empties; L is mu
}

const (
	lineBatchMax    = 1 << 20 // a writer with this much waiting makes the others wait
	lineBatchRounds = 8       // batches one goroutine writes before it hands over
)

// write writes b, or leaves it to the goroutine writing now, with out.
func (lb *lineBatch) write(b []byte, out func([]byte) (int, error)) (int, error) {
	lb.mu.Lock()
	if lb.drained.L == nil {
		lb.drained.L = &lb.mu
	}
	for lb.writing && len(lb.batch) >= lineBatchMax {
		lb.drained.Wait()
	}
	if lb.writing {
		lb.batch = append(lb.batch, b...)
		lb.mu.Unlock()
		return len(b), nil
	}
	lb.writing = true
	lb.mu.Unlock()
	_, err := out(b)
	lb.drain(out, lineBatchRounds)
	return len(b), err
}

// drain writes what others left, for up to rounds batches, and hands the
// rest to a new goroutine: the one serving a request must not write for
// everyone for ever.
func (lb *lineBatch) drain(out func([]byte) (int, error), rounds int) {
	lb.mu.Lock()
	for ; len(lb.batch) > 0 && rounds > 0; rounds-- {
		next := lb.batch
		lb.batch = lb.spare[:0]
		lb.mu.Unlock()
		out(next) // an error here has no caller left to tell
		lb.mu.Lock()
		// The spare is the array batch uses now: next's array, or none.
		lb.spare = nil
		if cap(next) <= lineBatchMax {
			lb.spare = next[:0]
		}
		lb.drained.Broadcast()
	}
	if len(lb.batch) > 0 {
		lb.mu.Unlock()
		go lb.drain(out, lineBatchRounds)
		return
	}
	lb.writing = false
	lb.drained.Broadcast()
	lb.mu.Unlock()
}

// wait returns once every line given to write is written.
func (lb *lineBatch) wait() {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.drained.L == nil {
		lb.drained.L = &lb.mu
	}
	for lb.writing {
		lb.drained.Wait()
	}
}

// logFile is a log file that can be reopened under the handlers that write
// to it. It is safe for concurrent use.
type logFile struct {
	name  string
	lines lineBatch
	mu    sync.Mutex // guards f; held while writing so a line never splits
	f     *os.File
}

func (lf *logFile) Write(b []byte) (int, error) { return lf.lines.write(b, lf.writeNow) }

func (lf *logFile) writeNow(b []byte) (int, error) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	return lf.f.Write(b)
}

// reopen opens the file by name and closes the one it replaces.
func (lf *logFile) reopen() error {
	f, err := os.OpenFile(lf.name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	lf.mu.Lock()
	old := lf.f
	lf.f = f
	lf.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Close closes the file once its lines are written.
func (lf *logFile) Close() error {
	lf.lines.wait()
	lf.mu.Lock()
	defer lf.mu.Unlock()
	return lf.f.Close()
}

// logger returns the logger called name ("katana.server", ...). Its level and
// destinations come from the most specific entry of loggers: the name itself,
// then its dotted parents, then root, then the top-level level on stderr.
func (l *logging) logger(name string) *slog.Logger {
	lc, ok := l.lookup(name)
	level, _ := parseLevel(l.cfg.Level)
	if ok && lc.Level != "" {
		level, _ = parseLevel(lc.Level)
	}
	var hs []slog.Handler
	for _, hn := range lc.Handlers {
		hc := l.cfg.Handlers[hn]
		hlevel := level
		if hc.Level != "" {
			hl, _ := parseLevel(hc.Level)
			hlevel = max(hl, level)
		}
		w := l.stderr
		if handlerKind(hc.Class) == "file" {
			if f, err := l.file(hc.Filename); err == nil {
				w = f
			}
		} else if strings.Contains(hc.Stream, "stdout") {
			w = stdout
		}
		hs = append(hs, l.handler(w, hlevel))
	}
	if len(hs) == 0 {
		hs = append(hs, l.handler(l.stderr, level))
	}
	var h slog.Handler = hs[0]
	if len(hs) > 1 {
		h = fanout(hs)
	}
	return slog.New(h).With("logger", name)
}

func (l *logging) lookup(name string) (LoggerConfig, bool) {
	for n := name; n != ""; {
		if lc, ok := l.cfg.Loggers[n]; ok {
			return lc, true
		}
		i := strings.LastIndexByte(n, '.')
		if i < 0 {
			break
		}
		n = n[:i]
	}
	if l.cfg.Root != nil {
		return *l.cfg.Root, true
	}
	return LoggerConfig{}, false
}

func (l *logging) handler(w io.Writer, level slog.Level) slog.Handler {
	opt := &slog.HandlerOptions{Level: level}
	if l.cfg.Format == "json" {
		return slog.NewJSONHandler(w, opt)
	}
	return newTextHandler(w, level)
}

// fanout sends each record to several handlers.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, level slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, level) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			h.Handle(ctx, r.Clone())
		}
	}
	return nil
}

func (f fanout) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}
