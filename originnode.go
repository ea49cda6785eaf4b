// originnode.go parses origin nodes (HTTP, HTTPS, local directories, numeric
// ranges) and keeps each node's health.
package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxRangeNodes bounds what one ips entry may expand to, so that a typo such
// as "{1..100000}" is a config error instead of a huge node list.
const maxRangeNodes = 4096

// node is one replica of a cluster: either an HTTP(S) server (base is set) or
// a local directory (dir is set). Its fields are set once by parseNode; only
// health changes later, and health is safe for concurrent use.
type node struct {
	name string   // as configured after range expansion, password redacted
	base *url.URL // HTTP nodes: scheme, host and an optional path prefix
	dir  string   // local nodes: absolute root directory

	health nodeHealth
}

// local reports whether n is a local directory node.
func (n *node) local() bool { return n.dir != "" }

// String returns the node as configured, for logs and errors.
func (n *node) String() string { return n.name }

// url returns the URL of path on an HTTP node. path is a decoded path that
// starts with "/"; url.URL percent-encodes it (spaces, UTF-8, '?', '#', '%')
// and keeps '/' as the separator.
func (n *node) url(path string) string {
	u := *n.base
	u.Path = strings.TrimSuffix(n.base.Path, "/") + path
	u.RawPath = ""
	return u.String()
}

// nodeHealth records recent connection failures of a node. A node that timed
// out or refused a connection is down until downUntil, with a back-off that
// doubles on every further failure; the first request after that probes it
// again. The zero value is a healthy node. It is safe for concurrent use.
type nodeHealth struct {
	mu        sync.Mutex // guards the fields below
	failures  int
	downUntil time.Time
	timeout   bool // whether the last failure was a timeout

	checking atomic.Bool // a liveness check is under way (checkAlive)
}

// up reports whether the node may be tried at now.
func (h *nodeHealth) up(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !now.Before(h.downUntil)
}

// lastKind returns the sentinel that matches the node's last failure.
func (h *nodeHealth) lastKind() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.timeout {
		return errOriginTimeout
	}
	return errOriginFailed
}

// markDown records a failure at now and returns how long the node is skipped.
func (h *nodeHealth) markDown(now time.Time, timeout bool, first, max time.Duration) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures++
	d := first
	for i := 1; i < h.failures && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	h.downUntil = now.Add(d)
	h.timeout = timeout
	return d
}

// markUp forgets past failures after a successful answer.
func (h *nodeHealth) markUp() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures, h.downUntil, h.timeout = 0, time.Time{}, false
}

// expandRanges expands every "{A..B}" in s (A <= B, decimal) into the list
// of strings it stands for, left to right. A range whose bounds have a
// leading zero pads to the width of the wider bound, as a shell does:
// "{08..10}" gives 08, 09, 10.
func expandRanges(s string) ([]string, error) {
	open := strings.Index(s, "{")
	if open < 0 {
		if strings.Contains(s, "}") {
			return nil, errors.New("unbalanced '}'")
		}
		return []string{s}, nil
	}
	end := strings.Index(s[open:], "}")
	if end < 0 {
		return nil, errors.New("unbalanced '{'")
	}
	lo, hi, width, err := parseRange(s[open+1 : open+end])
	if err != nil {
		return nil, err
	}
	rest, err := expandRanges(s[open+end+1:])
	if err != nil {
		return nil, err
	}
	if (hi-lo+1)*len(rest) > maxRangeNodes {
		return nil, fmt.Errorf("expands to more than %d nodes", maxRangeNodes)
	}
	var out []string
	for i := lo; i <= hi; i++ {
		for _, r := range rest {
			out = append(out, fmt.Sprintf("%s%0*d%s", s[:open], width, i, r))
		}
	}
	return out, nil
}

// parseRange reads "A..B" and returns its bounds and its zero-padding width
// (0 when neither bound has a leading zero).
func parseRange(body string) (lo, hi, width int, err error) {
	a, b, ok := strings.Cut(body, "..")
	if !ok {
		return 0, 0, 0, fmt.Errorf("range {%s}: want {A..B}", body)
	}
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || lo < 0 || hi < 0 {
		return 0, 0, 0, fmt.Errorf("range {%s}: bounds must be whole numbers", body)
	}
	if lo > hi {
		return 0, 0, 0, fmt.Errorf("range {%s} runs backwards", body)
	}
	if hi-lo >= maxRangeNodes {
		return 0, 0, 0, fmt.Errorf("range {%s} has more than %d values", body, maxRangeNodes)
	}
	if (len(a) > 1 && a[0] == '0') || (len(b) > 1 && b[0] == '0') {
		width = max(len(a), len(b))
	}
	return lo, hi, width, nil
}

// parseNode reads one expanded ips entry: host[:port] (plain HTTP, with an
// optional path prefix), an http:// or https:// URL, or a local directory
// given as file:///dir or as a path starting with '/' or '.'. A local
// directory must exist when the origin is built.
func parseNode(s string) (*node, error) {
	switch {
	case s == "":
		return nil, errors.New("empty node")
	case strings.TrimSpace(s) != s || strings.ContainsAny(s, " \t\r\n"):
		return nil, errors.New("contains white space")
	case strings.HasPrefix(s, "file:"):
		return parseFileNode(s)
	case strings.HasPrefix(s, "/"), strings.HasPrefix(s, "."):
		return localNode(s, s)
	case strings.Contains(s, "://"):
		return parseURLNode(s, s)
	}
	return parseURLNode(s, "http://"+s)
}

// parseFileNode reads file:///dir (or file://localhost/dir).
func parseFileNode(s string) (*node, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("bad file URL: %w", err)
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("file URL names host %q; want file:///dir", u.Host)
	}
	if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
		return nil, errors.New("file URL needs an absolute path: file:///dir")
	}
	return localNode(s, u.Path)
}

// localNode checks that dir is a directory and returns its node.
func localNode(name, dir string) (*node, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local directory: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("local directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("local directory: %s is not a directory", abs)
	}
	return &node{name: name, dir: abs}, nil
}

// parseURLNode reads an http:// or https:// node; name is the text as
// configured and raw the same with a scheme.
func parseURLNode(name, raw string) (*node, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("bad node address: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q: want http, https or file", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %q out of range", p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return nil, errors.New("empty port")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, errors.New("a node may not have a query or a fragment")
	}
	if strings.Contains(u.Hostname(), ":") && net.ParseIP(u.Hostname()) == nil {
		return nil, fmt.Errorf("bad host %q", u.Hostname())
	}
	if u.User != nil {
		name = u.Redacted()
	}
	return &node{name: name, base: u}, nil
}
