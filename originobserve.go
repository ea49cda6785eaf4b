// originobserve.go times each probe and request to an origin node and
// reports it to the options' Observe hook, for metrics and the access log.
package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"
)

// originEvent is one probe or request to an origin node.
type originEvent struct {
	Kind     string // "probe" (HEAD) or "fetch" (GET, or a forwarded request)
	Origin   string
	Cluster  string
	Node     string
	Duration time.Duration
	Err      error // nil when the node answered
}

// observe reports an event to the Observe hook, if one is set.
func (o *Origin) observe(ctx context.Context, kind string, c *cluster, n *node,
	start time.Time, err error) {
	if o.opt.Observe == nil {
		return
	}
	o.opt.Observe(ctx, originEvent{Kind: kind, Origin: o.name, Cluster: c.name, Node: n.name,
		Duration: time.Since(start), Err: err})
}

// timedProbe is probeNode, observed. A probe cancelled because another
// node won is not reported: its duration says nothing about the node.
func (o *Origin) timedProbe(ctx, pctx context.Context, c *cluster, n *node, path string,
	v validators) probeResult {
	start := time.Now()
	r := o.probeNode(ctx, pctx, c, n, path, v)
	if r.err == nil || !errors.Is(pctx.Err(), context.Canceled) {
		o.observe(ctx, "probe", c, n, start, r.err)
	}
	return r
}

// timedGet is getNode, observed.
func (o *Origin) timedGet(ctx context.Context, c *cluster, n *node, path string, v validators,
	sink fetchSink) (*originResponse, error) {
	start := time.Now()
	resp, err := o.getNode(ctx, c, n, path, v, sink)
	o.observe(ctx, "fetch", c, n, start, err)
	return resp, err
}

// timedDo is doNode, observed up to the response headers (the caller reads
// the body).
func (o *Origin) timedDo(ctx context.Context, c *cluster, n *node, method, path,
	rawQuery string, h http.Header, body io.Reader) (*http.Response, error) {
	start := time.Now()
	resp, err := o.doNode(ctx, c, n, method, path, rawQuery, h, body)
	o.observe(ctx, "fetch", c, n, start, err)
	return resp, err
}
