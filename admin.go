// admin.go is the admin listener: metrics, health, readiness, profiling
// and purge, kept off the public port.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
)

// newAdminHandler serves the admin endpoints. cur returns the server in
// use, or nil before a config is loaded; m is the process's metrics.
//
//	GET  /metrics              Prometheus text format
//	GET  /healthz              200 while the process runs
//	GET  /readyz               200 when a config is loaded and cache_dir is writable
//	GET  /debug/pprof/         net/http/pprof
//	POST /purge?path=/a.jpg    remove a source and its variants; JSON answer
func newAdminHandler(cur func() *server, m *metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(cur()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("POST /purge", func(w http.ResponseWriter, r *http.Request) {
		servePurge(w, r, cur())
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

var errNoConfig = errors.New("no config loaded")

// ready reports why s cannot serve: no config, or a cache_dir where a file
// cannot be created.
func ready(s *server) error {
	if s == nil {
		return errNoConfig
	}
	dir := s.cache.tmpDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cache_dir: %w", err)
	}
	f, err := os.CreateTemp(dir, tempPrefix+"ready-*")
	if err != nil {
		return fmt.Errorf("cache_dir: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// servePurge answers POST /purge?path=... with what was removed.
func servePurge(w http.ResponseWriter, r *http.Request, s *server) {
	target := r.URL.Query().Get("path")
	if target == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "path is required"})
		return
	}
	if s == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": errNoConfig.Error()})
		return
	}
	res, err := s.purge(target)
	if err != nil {
		status, msg := errorStatus(err)
		writeJSON(w, status, map[string]string{"error": msg, "path": target})
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
