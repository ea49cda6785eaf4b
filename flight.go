// flight.go collapses concurrent work on the same key into one execution.
package main

import (
	"context"
	"fmt"
	"sync"
)

// flightGroup runs at most one function per key at a time; callers that ask
// for a key already in flight wait for its result. Unlike plain singleflight,
// the work runs under its own context that is cancelled only when every
// waiting caller has gone, so one client leaving does not fail the others.
// The zero value is ready to use and safe for concurrent use.
type flightGroup struct {
	mu    sync.Mutex // guards calls
	calls map[string]*flightCall
}

type flightCall struct {
	done    chan struct{}
	val     any
	err     error
	waiters int // guarded by flightGroup.mu
	cancel  context.CancelFunc
}

// do runs fn for key unless a run is already in flight, and returns its
// result. shared reports whether the result came from a run that another
// caller started. A panic in fn becomes an error.
func (g *flightGroup) do(ctx context.Context, key string,
	fn func(context.Context) (any, error)) (v any, shared bool, err error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = make(map[string]*flightCall)
	}
	c, shared := g.calls[key]
	if !shared {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &flightCall{done: make(chan struct{}), cancel: cancel}
		g.calls[key] = c
		go g.run(fctx, key, c, fn)
	}
	c.waiters++
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.val, shared, c.err
	case <-ctx.Done():
		g.mu.Lock()
		c.waiters--
		if c.waiters == 0 {
			c.cancel()
		}
		g.mu.Unlock()
		return nil, shared, ctx.Err()
	}
}

func (g *flightGroup) run(ctx context.Context, key string, c *flightCall,
	fn func(context.Context) (any, error)) {
	defer func() {
		if p := recover(); p != nil {
			c.val, c.err = nil, fmt.Errorf("%w: panic: %v", errInternal, p)
		}
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		c.cancel()
		close(c.done)
	}()
	c.val, c.err = fn(ctx)
}
