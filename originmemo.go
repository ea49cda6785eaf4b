// originmemo.go remembers where origin paths live and collapses concurrent
// fetches of the same path into one.
package main

import (
	"container/list"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// pathLocation is what the memo knows of a path: the cluster and node that
// answered, or, when found is false, that no cluster has it.
type pathLocation struct {
	path    string
	c       *cluster
	n       *node
	found   bool
	expires time.Time
}

// locationMemo is a bounded LRU of locations with per-entry expiry. It is
// safe for concurrent use. The zero value is not usable; see newLocationMemo.
type locationMemo struct {
	mu  sync.Mutex               // guards ll and m
	max int                      // most entries kept; the least recently used go first
	ll  *list.List               // front is the most recently used; values are *location
	m   map[string]*list.Element // by path
}

// newLocationMemo returns a memo holding at most max entries.
func newLocationMemo(max int) *locationMemo {
	return &locationMemo{max: max, ll: list.New(), m: map[string]*list.Element{}}
}

// get returns the location of path if it is known and has not expired at now.
func (m *locationMemo) get(path string, now time.Time) (pathLocation, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.m[path]
	if !ok {
		return pathLocation{}, false
	}
	loc := e.Value.(*pathLocation)
	if !now.Before(loc.expires) {
		m.removeLocked(e)
		return pathLocation{}, false
	}
	m.ll.MoveToFront(e)
	return *loc, true
}

// put stores loc, replacing what was known of its path.
func (m *locationMemo) put(loc pathLocation) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.m[loc.path]; ok {
		*e.Value.(*pathLocation) = loc
		m.ll.MoveToFront(e)
		return
	}
	m.m[loc.path] = m.ll.PushFront(&loc)
	for m.ll.Len() > m.max {
		m.removeLocked(m.ll.Back())
	}
}

// forget drops what is known of path.
func (m *locationMemo) forget(path string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.m[path]; ok {
		m.removeLocked(e)
	}
}

// len returns the number of entries, expired ones included.
func (m *locationMemo) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ll.Len()
}

func (m *locationMemo) removeLocked(e *list.Element) {
	m.ll.Remove(e)
	delete(m.m, e.Value.(*pathLocation).path)
}

// fetchGroup collapses concurrent Fetch calls for the same path and
// validators. The first caller (the leader) fetches into its own sink;
// callers arriving before it finishes (followers) wait, then copy the body
// from the leader's sink when it is an io.ReaderAt, and the leader returns
// only once they are done. A follower whose leader's sink cannot be read
// fetches on its own (the location is known by then, so that costs a GET and
// no probe). When the leader's caller goes away, the followers start over.
// The zero value is ready to use and it is safe for concurrent use.
type fetchGroup struct {
	mu sync.Mutex // guards m and every flight's callers
	m  map[string]*fetchFlight
}

// fetchFlight is one Fetch in progress and, once done is closed, its result.
type fetchFlight struct {
	done    chan struct{}
	resp    *originResponse
	err     error
	gone    bool           // the leader's caller left (or it panicked): start over
	src     io.ReaderAt    // the leader's sink, or nil
	copies  sync.WaitGroup // followers still reading src
	callers int            // leader and followers so far; for tests
}

// followResult says what a follower does once the leader has finished.
type followResult int

const (
	followDone  followResult = iota // the follower has its answer
	followAgain                     // start over through the group
	followAlone                     // fetch alone, outside the group
)

func fetchFlightKey(path string, v validators) string {
	return path + "\x00" + v.ETag + "\x00" + v.LastModified
}

// do runs o.fetch once for concurrent callers with the same key.
func (g *fetchGroup) do(ctx context.Context, o *Origin, path string, v validators,
	sink fetchSink) (*originResponse, error) {
	key := fetchFlightKey(path, v)
	g.mu.Lock()
	if f, ok := g.m[key]; ok {
		f.callers++
		f.copies.Add(1) // before the leader's Wait: it waits only after deleting f
		g.mu.Unlock()
		o.stats.Coalesced.Add(1)
		resp, next, err := f.follow(ctx, sink)
		f.copies.Done()
		switch next {
		case followAgain:
			return g.do(ctx, o, path, v, sink)
		case followAlone:
			return o.fetch(ctx, path, v, sink)
		}
		return resp, err
	}
	if g.m == nil {
		g.m = map[string]*fetchFlight{}
	}
	f := &fetchFlight{done: make(chan struct{}), callers: 1, gone: true}
	g.m[key] = f
	g.mu.Unlock()
	defer g.land(key, f) // deferred: followers are released even if fetch panics

	f.resp, f.err = o.fetch(ctx, path, v, sink)
	f.gone = f.err != nil && ctx.Err() != nil
	f.src, _ = sink.(io.ReaderAt)
	return f.resp, f.err
}

// land ends flight f: later callers start a new one, and the followers get
// f's result. It returns once they have copied what they need of it.
func (g *fetchGroup) land(key string, f *fetchFlight) {
	g.mu.Lock()
	delete(g.m, key)
	g.mu.Unlock()
	close(f.done)
	f.copies.Wait()
}

// callers returns how many calls wait on the flight for path and v; tests
// use it to start an origin answer once every caller has joined.
func (g *fetchGroup) callers(path string, v validators) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.m[fetchFlightKey(path, v)]; ok {
		return f.callers
	}
	return 0
}

// follow waits for the leader and copies its answer into sink.
func (f *fetchFlight) follow(ctx context.Context,
	sink fetchSink) (*originResponse, followResult, error) {
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, followDone, fmt.Errorf("waiting for origin: %w", ctx.Err())
	}
	switch {
	case f.gone:
		return nil, followAgain, nil
	case f.err != nil:
		return nil, followDone, f.err
	case f.resp.Status != http.StatusOK:
		return f.resp.clone(), followDone, nil
	case f.src == nil:
		return nil, followAlone, nil
	}
	if err := resetSink(sink); err != nil {
		return nil, followDone, &sinkError{err}
	}
	w := &sinkWriter{w: sink}
	_, err := io.Copy(w, &ctxReader{ctx: ctx, r: io.NewSectionReader(f.src, 0, f.resp.Size)})
	switch {
	case w.err != nil:
		return nil, followDone, &sinkError{w.err}
	case ctx.Err() != nil:
		return nil, followDone, fmt.Errorf("copying shared origin body: %w", ctx.Err())
	case err != nil:
		return nil, followAlone, nil // the leader's sink went bad: fetch alone
	}
	return f.resp.clone(), followDone, nil
}

// clone returns a copy of r whose Header can be changed independently.
func (r *originResponse) clone() *originResponse {
	c := *r
	c.Header = r.Header.Clone()
	return &c
}

// ctxReader is a reader that stops once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// sinkWriter remembers a write error, to tell a failing sink (our disk)
// from a failing origin.
type sinkWriter struct {
	w   io.Writer
	err error
}

func (s *sinkWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil {
		s.err = err
	} else if n < len(p) {
		s.err = io.ErrShortWrite
		err = s.err
	}
	return n, err
}

// resetSink empties sink and rewinds it.
func resetSink(sink fetchSink) error {
	if err := sink.Truncate(0); err != nil {
		return fmt.Errorf("truncating sink: %w", err)
	}
	if _, err := sink.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewinding sink: %w", err)
	}
	return nil
}
