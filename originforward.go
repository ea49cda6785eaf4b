// originforward.go sends requests as they are to the node that holds a path,
// for the proxy action, which passes origin answers through.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Do sends a request with any method to the origin and returns the answer
// as it came, redirects included; the caller closes its body. The node is
// the remembered location of path, else the only node, else the winner of a
// probe round (for a path no cluster has, errNotFound). A node that cannot
// be reached is skipped for its sibling when the request has no body.
// Local directory nodes answer GET and HEAD only.
func (o *Origin) Do(ctx context.Context, method, path, rawQuery string, h http.Header,
	body io.Reader) (*http.Response, error) {
	if !cleanOriginPath(path) {
		return nil, fmt.Errorf("origin %q: path %q: %w", o.name, path, errBadOriginPath)
	}
	c, first, err := o.locate(ctx, path)
	if err != nil {
		return nil, err
	}
	last := allDown(c)
	for _, n := range o.getOrder(c, first) {
		resp, err := o.timedDo(ctx, c, n, method, path, rawQuery, h, body)
		if err == nil {
			o.remember(path, c, n, nil)
			return resp, nil
		}
		last = err
		if body != nil || ctx.Err() != nil {
			break
		}
	}
	return nil, last
}

// locate finds the cluster, and the node to ask first, for path.
func (o *Origin) locate(ctx context.Context, path string) (*cluster, *node, error) {
	if loc, ok := o.memo.get(path, o.now()); ok && loc.found {
		return loc.c, loc.n, nil
	}
	if c := o.single; c != nil {
		return c, c.nodes[0], nil
	}
	win, err := o.probe(ctx, path, validators{})
	if err != nil {
		o.remember(path, nil, nil, err)
		return nil, nil, err
	}
	return win.c, win.n, nil
}

// doNode sends one request to node n of c.
func (o *Origin) doNode(ctx context.Context, c *cluster, n *node, method, path, rawQuery string,
	h http.Header, body io.Reader) (*http.Response, error) {
	if n.local() {
		return o.doLocal(c, n, method, path, h)
	}
	u := n.url(path)
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	req, err := o.newRequest(ctx, c, method, u, validators{})
	if err != nil {
		return nil, fmt.Errorf("cluster %q node %s: %w: %v", c.name, n.name, errOriginFailed, err)
	}
	for k, vs := range h {
		if _, set := c.header[k]; !set && k != "Host" {
			req.Header[k] = vs
		}
	}
	if ua := h.Get("User-Agent"); ua != "" {
		req.Header.Set("User-Agent", ua)
	}
	if body != nil {
		req.Body = io.NopCloser(body)
		if cl := h.Get("Content-Length"); cl != "" {
			req.ContentLength, _ = strconv.ParseInt(cl, 10, 64)
		} else {
			req.ContentLength = -1
		}
	}
	resp, err := c.client.Transport.RoundTrip(req)
	if err != nil {
		return nil, o.nodeFailed(ctx, ctx, c, n, method, err)
	}
	n.health.markUp()
	return resp, nil
}

// doLocal answers GET and HEAD from a local directory node.
func (o *Origin) doLocal(c *cluster, n *node, method, path string,
	h http.Header) (*http.Response, error) {
	if method != http.MethodGet && method != http.MethodHead {
		return nil, fmt.Errorf("cluster %q node %s: %w: a directory takes only GET and HEAD",
			c.name, n.name, errOriginFailed)
	}
	f, fi, err := openLocal(n, path)
	if err != nil {
		if localMissing(err) {
			return nil, fmt.Errorf("origin %q: %s: %w", o.name, path, errNotFound)
		}
		return nil, fmt.Errorf("cluster %q node %s: %w: %v", c.name, n.name, errOriginFailed, err)
	}
	header := localHeader(fi)
	resp := &http.Response{StatusCode: http.StatusOK, Header: header, ContentLength: fi.Size(),
		Body: f}
	v := validators{ETag: h.Get("If-None-Match"), LastModified: h.Get("If-Modified-Since")}
	if v != (validators{}) && localNotModified(v, header.Get("ETag"), fi.ModTime()) {
		resp.StatusCode, resp.ContentLength = http.StatusNotModified, 0
		header.Del("Content-Length")
		method = http.MethodHead
	}
	if method == http.MethodHead {
		f.Close()
		resp.Body = http.NoBody
	}
	return resp, nil
}
