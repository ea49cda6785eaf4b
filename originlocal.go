// originlocal.go serves origin files from local directory nodes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// statLocal returns what is known of path under the root of local node n.
// Names are resolved with os.Root, so neither ".." nor a symbolic link can
// reach a file outside the root: such a file counts as missing. Anything but
// a regular file (a directory, a pipe) is missing too.
func statLocal(n *node, path string) (fs.FileInfo, error) {
	root, err := os.OpenRoot(n.dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fi, err := root.Stat(localName(path))
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: %w", path, fs.ErrNotExist)
	}
	return fi, nil
}

// openLocal opens path under the root of local node n, as statLocal finds it.
func openLocal(n *node, path string) (*os.File, fs.FileInfo, error) {
	if _, err := statLocal(n, path); err != nil { // before Open: a pipe would block it
		return nil, nil, err
	}
	f, err := os.OpenInRoot(n.dir, localName(path))
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// localName turns an origin path into a name relative to a node's root.
func localName(path string) string {
	name := filepath.FromSlash(strings.TrimLeft(path, "/"))
	if name == "" {
		return "."
	}
	return name
}

// probeLocal answers a probe from a local node.
func (o *Origin) probeLocal(c *cluster, n *node, path string, v validators) probeResult {
	r := probeResult{c: c, n: n}
	fi, err := statLocal(n, path)
	if err != nil {
		return o.localResult(r, path, err)
	}
	r.status, r.header = http.StatusOK, localHeader(fi)
	if localNotModified(v, r.header.Get("ETag"), fi.ModTime()) {
		r.status = http.StatusNotModified
	}
	return r
}

// localResult records err of a local node in r: missing is a 404 answer,
// anything else a failure.
func (o *Origin) localResult(r probeResult, path string, err error) probeResult {
	if localMissing(err) {
		r.status = http.StatusNotFound
		return r
	}
	r.err = fmt.Errorf("cluster %q node %s: %s: %w: %v", r.c.name, r.n.name, path,
		errOriginFailed, err)
	o.warn(r.c, r.n, "stat", err)
	return r
}

// getLocal copies path from local node n into sink, or answers 304 when v
// matches the file.
func (o *Origin) getLocal(ctx context.Context, c *cluster, n *node, path string, v validators,
	sink fetchSink) (*originResponse, error) {
	where := fmt.Sprintf("cluster %q node %s: %s", c.name, n.name, path)
	f, fi, err := openLocal(n, path)
	if err != nil {
		if localMissing(err) {
			return nil, fmt.Errorf("%s: %w", where, errNotFound)
		}
		o.warn(c, n, "open", err)
		return nil, fmt.Errorf("%s: %w: %v", where, errOriginFailed, err)
	}
	defer f.Close()
	resp := &originResponse{Status: http.StatusOK, Header: localHeader(fi),
		Node: n.name, Cluster: c.name}
	if localNotModified(v, resp.Header.Get("ETag"), fi.ModTime()) {
		resp.Status = http.StatusNotModified
		return resp, nil
	}
	if limit := o.opt.MaxBodyBytes; limit > 0 && fi.Size() > limit {
		return nil, fmt.Errorf("%s: %w: %d bytes over %d", where, errTooLarge, fi.Size(), limit)
	}

	w := &sinkWriter{w: sink}
	resp.Size, err = io.CopyN(w, &ctxReader{ctx: ctx, r: f}, fi.Size())
	switch {
	case w.err != nil:
		return nil, &sinkError{w.err}
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%s: %w", where, ctx.Err())
	case err != nil:
		return nil, fmt.Errorf("%s: %w: read %d of %d bytes: %v", where, errOriginFailed,
			resp.Size, fi.Size(), err)
	}
	return resp, nil
}

// localMissing reports whether err means the file is not in the root.
func localMissing(err error) bool {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) ||
		errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENAMETOOLONG) {
		return true
	}
	// TODO: os.Root reports a name leaving the root with an unexported
	// error; matching its text is the only way until the os package exports it.
	var pe *fs.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes from parent")
}

// localHeader describes a local file as an HTTP origin would: Last-Modified
// from its mtime, an ETag from its mtime and size, its length and type.
func localHeader(fi fs.FileInfo) http.Header {
	h := http.Header{}
	h.Set("Last-Modified", fi.ModTime().UTC().Format(http.TimeFormat))
	h.Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.ModTime().UnixNano(), fi.Size()))
	h.Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	if ct := mime.TypeByExtension(strings.ToLower(filepath.Ext(fi.Name()))); ct != "" {
		h.Set("Content-Type", ct)
	}
	return h
}

// localNotModified evaluates stored validators against a file's current ones as
// RFC 9110 13.2.2 orders it: If-None-Match (weak comparison) when an ETag is
// known, else If-Modified-Since at one-second precision.
func localNotModified(v validators, etag string, mod time.Time) bool {
	if v.ETag != "" {
		return strings.TrimPrefix(v.ETag, "W/") == strings.TrimPrefix(etag, "W/")
	}
	if v.LastModified == "" {
		return false
	}
	t, err := http.ParseTime(v.LastModified)
	return err == nil && !mod.Truncate(time.Second).After(t)
}
