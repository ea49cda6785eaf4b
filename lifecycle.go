// lifecycle.go runs the server process: it swaps in a new server on reload,
// drains and closes the old one, and shuts down gracefully.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// generation is one loaded config and the server built from it. Requests
// hold it while they run; once retired, the last one to finish closes
// drained. Its methods are safe for concurrent use.
type generation struct {
	cfg         *Config
	src         configSource
	s           *server
	logs        *logging
	log         *slog.Logger // "katana.server"
	stopCleaner func()       // nil until the cleaner runs

	mu      sync.Mutex // guards active and retired
	active  int
	retired bool
	drained chan struct{} // closed when retired and no request holds it
}

// acquire counts a request in, unless g was retired.
func (g *generation) acquire() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.retired {
		return false
	}
	g.active++
	return true
}

func (g *generation) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.active--
	if g.retired && g.active == 0 {
		close(g.drained)
	}
}

// retire refuses new requests; drained closes when the last one ends.
func (g *generation) retire() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.retired = true
	if g.active == 0 {
		close(g.drained)
	}
}

// swapHandler serves each request with the current generation. A reload
// stores the new one and then retires the old, so a request that finds
// its generation retired loads again and gets the new one; one retired
// with no successor is shutting down, and the request gets 503. The zero
// value serves nothing: store a generation before serving.
type swapHandler struct {
	cur atomic.Pointer[generation]
}

func (h *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for {
		g := h.cur.Load()
		if g.acquire() {
			defer g.release()
			g.s.ServeHTTP(w, r)
			return
		}
		if h.cur.Load() == g {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
	}
}

// server returns the server in use, for the admin listener; nil before
// the first generation is stored.
func (h *swapHandler) server() *server {
	if g := h.cur.Load(); g != nil {
		return g.s
	}
	return nil
}

// cleaner returns the cleaner in use, or nil, for the metrics.
func (h *swapHandler) cleaner() *Cleaner {
	if s := h.server(); s != nil {
		return s.cleaner
	}
	return nil
}

// daemon is the serving process: the config file it reloads, the metrics
// that live across reloads and the handler in front of the generations.
type daemon struct {
	path    string          // config file; "" is the built-in config
	adjust  func(*Config)   // command-line overrides, applied on every load
	stderr  io.Writer       // console log output
	metrics *metrics        // never nil
	handler swapHandler     // the generation in use
	mu      sync.Mutex      // one reload at a time
	bg      context.Context // lifetime of the cleaners
}

func newDaemon(ctx context.Context, path string, adjust func(*Config), stderr io.Writer) *daemon {
	d := &daemon{path: path, adjust: adjust, stderr: locked(stderr), bg: ctx}
	d.metrics = newMetrics(d.handler.cleaner)
	return d
}

// load reads and validates the config and builds a generation from it,
// without starting anything.
func (d *daemon) load() (*generation, error) {
	cfg, src, err := loadConfigWith(d.path, d.adjust)
	if err != nil {
		return nil, err
	}
	return d.build(cfg, src)
}

// build makes the logging and the server of cfg.
func (d *daemon) build(cfg *Config, src configSource) (*generation, error) {
	logs, err := newLogging(cfg.Logging, d.stderr)
	if err != nil {
		return nil, err
	}
	log := logs.logger("katana.server")
	s, err := newServer(cfg, log)
	if err != nil {
		logs.Close()
		return nil, err
	}
	s.metrics = d.metrics
	for _, w := range src.Warnings {
		log.Warn("config", "warning", w)
	}
	return &generation{cfg: cfg, src: src, s: s, logs: logs, log: log,
		drained: make(chan struct{})}, nil
}

// discard releases a generation that never served.
func (g *generation) discard() {
	g.s.Close()
	g.logs.Close()
}

// activate starts g's cleaner and makes g the generation in use. The
// previous one, if any, is retired and closed once its requests end.
//
// TODO: the new server starts cold: its cleaner walks cache_dir again and
// its origins have forgotten where files live. Handing the index and the
// location memo over when cache_dir and origins are unchanged would make
// reloads of large caches cheaper.
func (d *daemon) activate(g *generation) {
	old := d.handler.cur.Load()
	if old != nil && old.stopCleaner != nil {
		// Stop the old cleaner first, so two never evict at once.
		old.stopCleaner()
	}
	g.stopCleaner = startCleaner(d.bg, g.cfg, g.s, g.logs.logger("katana.cleaner"))
	d.handler.cur.Store(g)
	if old == nil {
		return
	}
	old.retire()
	go func() {
		<-old.drained
		old.s.Close()
		old.logs.Close()
	}()
}

// reload loads the config again and swaps it in. A config that does not
// load or build is logged and changes nothing.
//
// TODO: listen addresses, admin_listen and the server timeouts are read
// once at start; a reload that changes them logs a warning, and a restart
// applies them.
func (d *daemon) reload() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.handler.cur.Load()
	g, err := d.load()
	d.metrics.reload(err)
	if err != nil {
		old.log.Error("reload failed, keeping the running config", "config",
			configName(old.src), "err", err)
		return fmt.Errorf("reload: %w", err)
	}
	d.activate(g)
	for key, changed := range map[string]bool{
		"admin_listen":        g.cfg.AdminListen != old.cfg.AdminListen,
		"shutdown_grace":      g.cfg.ShutdownGrace != old.cfg.ShutdownGrace,
		"read_header_timeout": g.cfg.ReadHeaderTimeout != old.cfg.ReadHeaderTimeout,
		"idle_timeout":        g.cfg.IdleTimeout != old.cfg.IdleTimeout,
		"write_timeout":       g.cfg.WriteTimeout != old.cfg.WriteTimeout,
	} {
		if changed {
			g.log.Warn("config key needs a restart to take effect", "key", key)
		}
	}
	g.log.Info("config reloaded", "config", configName(g.src), "cache_dir", g.s.cache.dir)
	return nil
}

// reopenLogs reopens the current generation's log files (SIGUSR1).
func (d *daemon) reopenLogs() {
	g := d.handler.cur.Load()
	if err := g.logs.Reopen(); err != nil {
		g.log.Error("reopening log files", "err", err)
		return
	}
	g.log.Info("log files reopened")
}

// closeWait bounds how long close waits for handlers still running after
// their connections were closed; image work does not stop halfway.
const closeWait = 2 * time.Second

// close stops the current generation after the listeners have shut down.
// Handlers whose connections a grace that ran out closed see their context
// cancelled; close gives them closeWait to log and leave.
func (d *daemon) close() {
	g := d.handler.cur.Load()
	if g == nil {
		return
	}
	g.retire()
	select {
	case <-g.drained:
	case <-time.After(closeWait):
		g.log.Warn("closing with requests still running", "waited", closeWait)
	}
	if g.stopCleaner != nil {
		g.stopCleaner()
	}
	g.s.Close()
	g.logs.Close()
}

// httpServer returns the public server for cfg's timeouts. Its own
// messages (bad requests, TLS errors) go to the logger of the generation in
// use.
func (d *daemon) httpServer(cfg *Config) *http.Server {
	return &http.Server{
		Handler:           &d.handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.Duration,
		IdleTimeout:       cfg.IdleTimeout.Duration,
		// A request body must come within the time its origin is given
		// to answer it: net/http would otherwise wait for the rest of a
		// short body for ever (before a 405, say). The loop takes no
		// bodies.
		ReadTimeout: cfg.ReadHeaderTimeout.Duration + cfg.OriginFetchTimeout.Duration,
		// WriteTimeout stays off: it bounds the whole answer, which would
		// cut a large file to a slow client. write_timeout is enforced per
		// write instead, by stallListener.
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       d.errorLog(),
	}
}

// errorLog is a log.Logger for net/http that follows reloads.
func (d *daemon) errorLog() *log.Logger {
	return slog.NewLogLogger(currentHandler{&d.handler}, slog.LevelWarn)
}

// currentHandler sends records to the logger of the generation in use.
type currentHandler struct{ h *swapHandler }

func (c currentHandler) cur() slog.Handler { return c.h.cur.Load().log.Handler() }

func (c currentHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return c.cur().Enabled(ctx, l)
}

func (c currentHandler) Handle(ctx context.Context, r slog.Record) error {
	return c.cur().Handle(ctx, r)
}

func (c currentHandler) WithAttrs(as []slog.Attr) slog.Handler { return c.cur().WithAttrs(as) }
func (c currentHandler) WithGroup(name string) slog.Handler    { return c.cur().WithGroup(name) }

// stopper is a server that can stop gracefully or at once: an http.Server
// or the httpLoop in front of one.
type stopper interface {
	Shutdown(context.Context) error
	Close() error
}

// shutdown stops the servers within grace: they stop accepting at once and
// requests in flight may finish. When grace runs out the remaining
// connections are closed and shutdown still returns nil, as a stop that was
// asked for is not a failure.
func shutdown(log *slog.Logger, grace time.Duration, srvs ...stopper) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range srvs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil {
				log.Warn("shutdown grace ran out, closing connections", "grace", grace,
					"err", err)
				srv.Close()
			}
		}()
	}
	wg.Wait()
}

// serveOn runs srv on ln in the background; the error channel gets its
// result, nil after a shutdown.
func serveOn(srv *http.Server, ln net.Listener) <-chan error {
	errc := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	return errc
}

// wait returns when ctx ends, a stop signal comes or a server fails,
// reloading on SIGHUP and reopening logs on SIGUSR1 meanwhile.
func (d *daemon) wait(ctx context.Context, sigs <-chan os.Signal, errc ...<-chan error) error {
	failed := make(chan error, len(errc))
	for _, c := range errc {
		if c != nil {
			go func() { failed <- <-c }()
		}
	}
	for {
		select {
		case err := <-failed:
			return err
		case <-ctx.Done():
			return nil
		case sig := <-sigs:
			switch signalAction(sig) {
			case "reload":
				sdNotify("RELOADING=1")
				d.reload()
				sdNotify("READY=1")
			case "reopen":
				d.reopenLogs()
			default:
				return nil
			}
		}
	}
}
