// originprobe.go locates the cluster holding a path with parallel HEAD
// probes ("who has it?") and classifies node failures.
package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// probeResult is one node's answer to a probe. status is 200, 304, 404 or
// another answer; err is set when the node gave no usable answer.
type probeResult struct {
	c      *cluster
	n      *node
	status int
	header http.Header
	err    error
}

// won reports whether r locates the file: a 200, or a 304 to a conditional probe.
func (r *probeResult) won(v validators) bool {
	return r.err == nil && (r.status == http.StatusOK ||
		(r.status == http.StatusNotModified && v != validators{}))
}

// probeTarget is a node chosen for a probe round.
type probeTarget struct {
	c *cluster
	n *node
}

// probe asks up to probesPerCluster random healthy nodes of every cluster
// at once whether they have path, within ProbeTimeout. The first 200 (or
// 304 to a conditional probe) wins and cancels the rest. Without a winner,
// the answer is errNotFound only if every cluster had a node saying 404 or
// 410; a cluster whose probes all failed, or whose nodes are all down, makes
// it errOriginFailed or errOriginTimeout, since the file may be there.
func (o *Origin) probe(ctx context.Context, path string, v validators) (*probeResult, error) {
	o.stats.Probes.Add(1)
	pctx, cancel := context.WithTimeout(ctx, o.opt.ProbeTimeout)
	defer cancel()

	targets, down := o.plan(o.now())
	results := make(chan probeResult, len(targets)) // buffered: losers never block
	for _, t := range targets {
		go func() { results <- o.timedProbe(ctx, pctx, t.c, t.n, path, v) }()
	}

	t := probeTally{absent: map[*cluster]bool{}, failed: map[*cluster]error{}}
	for range targets {
		r := <-results
		if r.won(v) {
			r.n.health.markUp()
			return &r, nil
		}
		t.add(&r)
	}
	return nil, o.noWinner(ctx, path, &t, down)
}

// plan picks the nodes to probe: up to probesPerCluster distinct random
// nodes of each cluster among those not backing off. It also returns the
// clusters that have no such node.
func (o *Origin) plan(now time.Time) (targets []probeTarget, down []*cluster) {
	for _, c := range o.clusters {
		up := upNodes(c.nodes, now)
		if len(up) == 0 {
			down = append(down, c)
			continue
		}
		rand.Shuffle(len(up), func(i, j int) { up[i], up[j] = up[j], up[i] })
		for _, n := range up[:min(len(up), probesPerCluster)] {
			targets = append(targets, probeTarget{c, n})
		}
	}
	return targets, down
}

// upNodes returns the nodes of ns that are not backing off at now.
func upNodes(ns []*node, now time.Time) []*node {
	var up []*node
	for _, n := range ns {
		if n.health.up(now) {
			up = append(up, n)
		}
	}
	return up
}

// probeTally sums up the losing answers of a probe round.
type probeTally struct {
	absent map[*cluster]bool  // a node of the cluster said 404/410
	failed map[*cluster]error // the last failure seen in the cluster
}

func (t *probeTally) add(r *probeResult) {
	switch {
	case r.err == nil && isAbsent(r.status):
		t.absent[r.c] = true
	case r.err != nil:
		t.failed[r.c] = r.err
	default:
		t.failed[r.c] = fmt.Errorf("cluster %q node %s: HEAD: %w: status %d",
			r.c.name, r.n.name, errOriginFailed, r.status)
	}
}

// noWinner turns a probe round without a winner into its error.
func (o *Origin) noWinner(ctx context.Context, path string, t *probeTally, down []*cluster) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("origin %q: locating %s: %w", o.name, path, err)
	}
	var errs []error
	for _, c := range down {
		errs = append(errs, allDown(c))
	}
	for _, c := range o.clusters {
		if err, ok := t.failed[c]; ok && !t.absent[c] {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return fmt.Errorf("origin %q: %s: %w in any cluster", o.name, path, errNotFound)
	}
	// A timeout anywhere makes the whole round a timeout (504): it is the
	// deadline that ended it.
	kind := errOriginFailed
	if slices.ContainsFunc(errs, func(e error) bool { return errors.Is(e, errOriginTimeout) }) {
		kind = errOriginTimeout
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("origin %q: locating %s: %w: %s", o.name, path, kind,
		strings.Join(msgs, "; "))
}

// allDown is the error of a cluster whose nodes are all backing off: a
// timeout if any node last failed by timing out, else a failure.
func allDown(c *cluster) error {
	kind := errOriginFailed
	for _, n := range c.nodes {
		if n.health.lastKind() == errOriginTimeout {
			kind = errOriginTimeout
		}
	}
	return fmt.Errorf("cluster %q: none of its %d nodes is up: %w", c.name, len(c.nodes), kind)
}

// isAbsent reports whether status says "not here": 404, 410, or a redirect
// that was not followed because it left the cluster.
func isAbsent(status int) bool {
	return status == http.StatusNotFound || status == http.StatusGone ||
		(status >= 300 && status < 400 && status != http.StatusNotModified)
}

// probeNode asks node n of c whether it has path. ctx is the caller's
// context and pctx the probe round's.
func (o *Origin) probeNode(ctx, pctx context.Context, c *cluster, n *node, path string,
	v validators) probeResult {
	if n.local() {
		return o.probeLocal(c, n, path, v)
	}
	r := probeResult{c: c, n: n}
	req, err := o.newRequest(pctx, c, http.MethodHead, n.url(path), v)
	if err != nil {
		r.err = fmt.Errorf("cluster %q node %s: %w: %v", c.name, n.name, errOriginFailed, err)
		return r
	}
	resp, err := c.client.Do(req)
	if err != nil {
		r.err = o.nodeFailed(ctx, pctx, c, n, "HEAD", err)
		return r
	}
	resp.Body.Close()
	r.status, r.header = resp.StatusCode, resp.Header
	o.log.Debug("origin probe", "origin", o.name, "cluster", c.name, "node", n.name,
		"path", path, "status", r.status)
	return r
}

// newRequest builds a request to a node of c with the User-Agent, the
// cluster's headers (Host as Request.Host) and, for validators, the
// conditional headers. Both If-None-Match and If-Modified-Since are sent
// when known; a server that evaluates the first ignores the second (RFC 9110
// 13.2.2).
func (o *Origin) newRequest(ctx context.Context, c *cluster, method, u string,
	v validators) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if o.opt.UserAgent != "" {
		req.Header.Set("User-Agent", o.opt.UserAgent)
	}
	for k, vs := range c.header {
		req.Header[k] = slices.Clone(vs)
	}
	if c.host != "" {
		req.Host = c.host
	}
	if v.ETag != "" {
		req.Header.Set("If-None-Match", v.ETag)
	}
	if v.LastModified != "" {
		req.Header.Set("If-Modified-Since", v.LastModified)
	}
	return req, nil
}

// nodeFailed classifies err, an error of op on node n, into a wrapped
// errOriginTimeout, errOriginFailed or the caller's ctx error, and backs the
// node off when it timed out or refused the connection. actx is the context
// of the attempt; an attempt cancelled because another probe won is neither
// logged nor held against the node.
func (o *Origin) nodeFailed(ctx, actx context.Context, c *cluster, n *node, op string,
	err error) error {
	where := fmt.Sprintf("cluster %q node %s: %s", c.name, n.name, op)
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", where, ctx.Err())
	}
	if errors.Is(actx.Err(), context.Canceled) {
		return fmt.Errorf("%s: %w: cancelled", where, errOriginFailed)
	}
	timeout := errors.Is(actx.Err(), context.DeadlineExceeded) || isNetTimeout(err)
	kind := errOriginFailed
	if timeout {
		kind = errOriginTimeout
	}
	if timeout || isDialError(err) {
		d := n.health.markDown(o.now(), timeout, o.opt.NodeBackoff, o.opt.NodeBackoffMax)
		o.log.Warn("origin node down", "origin", o.name, "cluster", c.name, "node", n.name,
			"op", op, "reason", err.Error(), "backoff", d)
		if timeout {
			o.checkAlive(c, n)
		}
	} else {
		o.warn(c, n, op, err)
	}
	return fmt.Errorf("%s: %w: %v", where, kind, err)
}

// warn logs a failure of a node that does not make it back off.
func (o *Origin) warn(c *cluster, n *node, op string, err error) {
	o.log.Warn("origin node failed", "origin", o.name, "cluster", c.name, "node", n.name,
		"op", op, "reason", err.Error())
}

// isNetTimeout reports whether err is a network timeout.
func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isDialError reports whether err happened while connecting (refused,
// unreachable, unknown host, proxy unreachable).
func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && (oe.Op == "dial" || oe.Op == "proxyconnect")
}

// checkAlive asks a node that timed out for HEAD / once, in the background,
// and brings it back at once if it answers anything within ProbeTimeout. A
// timeout may be one slow path rather than a hung node; without this, a
// client asking for a path the origin answers slowly could keep the node,
// and so every other path, out of service. A node that is really hung does
// not answer this either and stays down.
func (o *Origin) checkAlive(c *cluster, n *node) {
	if n.local() || !n.health.checking.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer n.health.checking.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), o.opt.ProbeTimeout)
		defer cancel()
		req, err := o.newRequest(ctx, c, http.MethodHead, n.url("/"), validators{})
		if err != nil {
			return
		}
		resp, err := c.client.Transport.RoundTrip(req)
		if err != nil {
			return
		}
		resp.Body.Close()
		n.health.markUp()
		o.log.Info("origin node answers again", "origin", o.name, "cluster", c.name,
			"node", n.name)
	}()
}
