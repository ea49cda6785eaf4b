// trace.go carries per-request facts through the context: the origin node
// that answered, for the access log.
package main

import (
	"context"
	"net/http"
	"sync"
)

// requestTrace is what a request learned on its way. It is safe for
// concurrent use: a coalesced fetch may note a node from another goroutine.
type requestTrace struct {
	mu   sync.Mutex // guards node
	node string     // origin node that answered; "" when none was contacted
}

type traceKey struct{}

// traceContext returns parent with a fresh trace, for a server that makes
// its own requests: withTrace then has nothing to add.
func traceContext(parent context.Context) context.Context {
	return context.WithValue(parent, traceKey{}, &requestTrace{})
}

// withTrace returns r with a fresh trace in its context, unless it has one.
func withTrace(r *http.Request) *http.Request {
	if traceOf(r.Context()) != nil {
		return r
	}
	return r.WithContext(traceContext(r.Context()))
}

// traceOf returns the trace of ctx, or nil.
func traceOf(ctx context.Context) *requestTrace {
	t, _ := ctx.Value(traceKey{}).(*requestTrace)
	return t
}

// noteNode records that node answered for the request of ctx; the last
// node noted wins.
func noteNode(ctx context.Context, node string) {
	if t := traceOf(ctx); t != nil {
		t.mu.Lock()
		t.node = node
		t.mu.Unlock()
	}
}

// originNode returns the node noted for the request of ctx, or "".
func originNode(ctx context.Context) string {
	t := traceOf(ctx)
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.node
}

// observeOrigin is the Observe hook of the server's origins: it feeds the
// metrics and notes the node a fetch went to, for the access log; when a
// fetch moves on to a sibling node, the last one tried is noted.
func (s *server) observeOrigin(ctx context.Context, ev originEvent) {
	s.metrics.origin(ev)
	if ev.Kind == "fetch" {
		noteNode(ctx, ev.Node)
	}
}
