// originget.go downloads a located file from the nodes of its cluster and
// checks the body (length, size limit, gzip).
package main

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
)

// sinkError is a failure to write to the caller's sink: a local problem,
// not the origin's, and never retried on another node.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return "writing origin body: " + e.err.Error() }
func (e *sinkError) Unwrap() error { return e.err }

// get fetches path from cluster c into sink: first from node first, then
// from other healthy nodes of c in random order, probesPerCluster nodes at
// most. Each attempt has its own FetchTimeout, body included, and starts
// with an empty sink. It returns the node that answered. When every node
// tried says 404 the answer is errNotFound; otherwise the last failure.
func (o *Origin) get(ctx context.Context, c *cluster, first *node, path string, v validators,
	sink fetchSink) (*originResponse, *node, error) {
	nodes := o.getOrder(c, first)
	if len(nodes) == 0 {
		return nil, nil, fmt.Errorf("origin %q: fetching %s: %w", o.name, path, allDown(c))
	}
	var failure, notFound error
	for _, n := range nodes {
		resp, err := o.timedGet(ctx, c, n, path, v, sink)
		if err == nil {
			return resp, n, nil
		}
		err = fmt.Errorf("origin %q: fetching %s: %w", o.name, path, err)
		if !retryable(ctx, err) {
			return nil, nil, err
		}
		if errors.Is(err, errNotFound) {
			notFound = err
		} else {
			failure = err
		}
	}
	if failure != nil {
		return nil, nil, failure
	}
	return nil, nil, notFound
}

// getOrder returns the nodes a GET tries: first, if it is not backing off,
// then the other healthy nodes of c shuffled, probesPerCluster at most.
func (o *Origin) getOrder(c *cluster, first *node) []*node {
	now := o.now()
	var order []*node
	if first.health.up(now) {
		order = append(order, first)
	}
	var others []*node
	for _, n := range upNodes(c.nodes, now) {
		if n != first {
			others = append(others, n)
		}
	}
	rand.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	order = append(order, others...)
	return order[:min(len(order), probesPerCluster)]
}

// retryable reports whether another node may succeed where err failed.
func retryable(ctx context.Context, err error) bool {
	var se *sinkError
	return ctx.Err() == nil && !errors.Is(err, errTooLarge) && !errors.As(err, &se)
}

// getNode fetches path from node n of c into sink.
func (o *Origin) getNode(ctx context.Context, c *cluster, n *node, path string, v validators,
	sink fetchSink) (*originResponse, error) {
	if err := resetSink(sink); err != nil {
		return nil, &sinkError{err}
	}
	o.stats.Gets.Add(1)
	if n.local() {
		return o.getLocal(ctx, c, n, path, v, sink)
	}
	actx, cancel := context.WithTimeout(ctx, o.opt.FetchTimeout)
	defer cancel()

	req, err := o.newRequest(actx, c, http.MethodGet, n.url(path), v)
	if err != nil {
		return nil, fmt.Errorf("cluster %q node %s: %w: %v", c.name, n.name, errOriginFailed, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, o.nodeFailed(ctx, actx, c, n, "GET", err)
	}
	defer resp.Body.Close()
	out := &originResponse{Status: resp.StatusCode, Header: resp.Header,
		Node: n.name, Cluster: c.name}
	if err := o.getStatus(c, n, resp, v); err != nil {
		return nil, err
	}
	n.health.markUp()
	if resp.StatusCode == http.StatusNotModified {
		return out, nil
	}

	out.Size, out.Header, err = o.readBody(resp, sink)
	if err != nil {
		return nil, o.bodyFailed(ctx, actx, c, n, err)
	}
	return out, nil
}

// getStatus checks the status of a GET: 200, or 304 to a conditional GET.
func (o *Origin) getStatus(c *cluster, n *node, resp *http.Response, v validators) error {
	s := resp.StatusCode
	switch {
	case s == http.StatusOK, s == http.StatusNotModified && v != validators{}:
		return nil
	case isAbsent(s):
		o.log.Debug("origin get", "origin", o.name, "cluster", c.name, "node", n.name,
			"status", s)
		return fmt.Errorf("cluster %q node %s: GET: %w: status %d", c.name, n.name, errNotFound, s)
	}
	err := fmt.Errorf("cluster %q node %s: GET: %w: status %d", c.name, n.name, errOriginFailed, s)
	o.warn(c, n, "GET", err)
	return err
}

// bodyFailed classifies an error of readBody.
func (o *Origin) bodyFailed(ctx, actx context.Context, c *cluster, n *node, err error) error {
	var se *sinkError
	switch {
	case errors.As(err, &se):
		return err
	case ctx.Err() != nil, actx.Err() != nil:
		return o.nodeFailed(ctx, actx, c, n, "GET body", err)
	case errors.Is(err, errTooLarge), errors.Is(err, errOriginFailed):
		o.warn(c, n, "GET body", err)
		return fmt.Errorf("cluster %q node %s: GET body: %w", c.name, n.name, err)
	}
	return o.nodeFailed(ctx, actx, c, n, "GET body", err)
}

// readBody copies the body of resp into sink, decoding gzip, and returns
// its size and the headers that describe the stored body. It fails with
// errTooLarge past MaxBodyBytes (reading stops at the limit), with
// errOriginFailed for a body shorter than its Content-Length, bad gzip or an
// unknown Content-Encoding, with a *sinkError when sink fails, and otherwise
// with the transport's error (timeout, reset).
func (o *Origin) readBody(resp *http.Response, sink io.Writer) (int64, http.Header, error) {
	limit := o.opt.MaxBodyBytes
	h := resp.Header
	raw := &countingReader{r: resp.Body}
	var body io.Reader = raw
	switch enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding"))); enc {
	case "", "identity":
		if limit > 0 && resp.ContentLength > limit {
			return 0, h, fmt.Errorf("%w: Content-Length %d over %d", errTooLarge,
				resp.ContentLength, limit)
		}
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return 0, h, fmt.Errorf("%w: bad gzip: %v", errOriginFailed, err)
		}
		defer zr.Close()
		body = zr
		h = h.Clone()
		h.Del("Content-Encoding")
		h.Del("Content-Length")
	default:
		return 0, h, fmt.Errorf("%w: unsupported Content-Encoding %q", errOriginFailed, enc)
	}
	if limit > 0 {
		body = io.LimitReader(body, limit+1)
	}

	w := &sinkWriter{w: sink}
	buf := o.bufs.Get().(*[]byte)
	defer o.bufs.Put(buf)
	n, err := io.CopyBuffer(w, body, *buf)
	return n, h, o.bodyError(resp, raw.n, n, w.err, err)
}

// bodyError turns the outcome of a body copy into readBody's error: raw is
// the number of bytes read off the wire and n the number stored.
func (o *Origin) bodyError(resp *http.Response, raw, n int64, werr, err error) error {
	limit := o.opt.MaxBodyBytes
	var gzErr bool
	if err != nil {
		gzErr = errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader)
	}
	switch {
	case werr != nil:
		return &sinkError{werr}
	case limit > 0 && n > limit:
		return fmt.Errorf("%w: body over %d bytes", errTooLarge, limit)
	case gzErr:
		return fmt.Errorf("%w: bad gzip: %v", errOriginFailed, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: body cut short after %d bytes: %v", errOriginFailed, raw, err)
	case err != nil:
		return err
	case resp.ContentLength >= 0 && raw < resp.ContentLength:
		return fmt.Errorf("%w: body has %d of %d bytes", errOriginFailed, raw,
			resp.ContentLength)
	}
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
