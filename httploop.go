// httploop.go serves plain requests on a lean HTTP/1.1 loop of Katana's own:
// GET and HEAD over HTTP/1.1 without a body, which is nearly all an image
// proxy's traffic. Every other connection is handed, with the bytes read so
// far, to net/http on the same listener.
//
// net/http costs a cache hit about as much again as the hit itself (a header
// map per answer, two writes, a background read per request); the loop writes
// a small answer in one write and watches for a client going away only when
// a request is still running after watchAfter.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

const (
	loopReadBuffer = 8 << 10  // a request head longer than this goes to net/http
	loopFlushAt    = 64 << 10 // answer bytes held before a write
	watchAfter     = 20 * time.Millisecond
)

// errHandoff says the connection's next request is one for net/http.
var errHandoff = errors.New("request for net/http")

// httpLoop accepts on ln and serves each connection with h until a request
// comes that is not plain; that connection then goes to the http.Server
// serving Listener(). Its methods are safe for concurrent use.
type httpLoop struct {
	ln         net.Listener
	h          http.Handler
	readHeader time.Duration // for a request head; 0 is no limit
	idle       time.Duration // between requests; 0 is readHeader
	errLog     *log.Logger   // panics of the handler; nil is the log package's

	handoff   chan net.Conn
	done      chan struct{} // closed when accepting stops
	stopOnce  sync.Once
	errMu     sync.Mutex // guards acceptErr
	acceptErr error

	mu      sync.Mutex             // guards conns and closing
	conns   map[*loopConn]struct{} // the connections being served
	closing atomic.Bool            // set with mu held, read without too
	gone    chan struct{}          // signalled when a connection ends
}

// newHTTPLoop starts accepting on ln, with the timeouts and the error log of
// srv, which must serve Listener().
func newHTTPLoop(ln net.Listener, h http.Handler, srv *http.Server) *httpLoop {
	idle := srv.IdleTimeout
	if idle <= 0 {
		idle = srv.ReadHeaderTimeout
	}
	l := &httpLoop{ln: ln, h: h, readHeader: srv.ReadHeaderTimeout, idle: idle,
		errLog:  srv.ErrorLog,
		handoff: make(chan net.Conn), done: make(chan struct{}),
		conns: make(map[*loopConn]struct{}), gone: make(chan struct{}, 1)}
	go l.accept()
	return l
}

// Listener is what net/http serves: the connections the loop hands over.
// Closing it stops accepting, as Shutdown does; connections stay open.
func (l *httpLoop) Listener() net.Listener { return loopListener{l} }

type loopListener struct{ l *httpLoop }

func (ll loopListener) Accept() (net.Conn, error) {
	select {
	case c := <-ll.l.handoff:
		return c, nil
	case <-ll.l.done:
		ll.l.errMu.Lock()
		defer ll.l.errMu.Unlock()
		return nil, ll.l.acceptErr
	}
}

func (ll loopListener) Close() error   { ll.l.stop(net.ErrClosed); return nil }
func (ll loopListener) Addr() net.Addr { return ll.l.ln.Addr() }

// stop ends accepting; err is what net/http's Accept then returns.
func (l *httpLoop) stop(err error) {
	l.stopOnce.Do(func() {
		l.errMu.Lock()
		l.acceptErr = err
		l.errMu.Unlock()
		l.ln.Close()
		close(l.done)
	})
}

func (l *httpLoop) accept() {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
					continue
				case <-l.done:
					return
				}
			}
			l.stop(err)
			return
		}
		delay = 0
		lc := newLoopConn(l, c)
		if !l.track(lc) {
			c.Close()
			continue
		}
		go lc.serve()
	}
}

func (l *httpLoop) logf(format string, args ...any) {
	if l.errLog != nil {
		l.errLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// track adds lc to the connections served; it returns false when the loop
// is closing and lc should end.
func (l *httpLoop) track(lc *loopConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing.Load() {
		return false
	}
	l.conns[lc] = struct{}{}
	return true
}

func (l *httpLoop) untrack(lc *loopConn) {
	l.mu.Lock()
	delete(l.conns, lc)
	l.mu.Unlock()
	select {
	case l.gone <- struct{}{}:
	default:
	}
}

// Shutdown stops accepting, closes idle connections and waits for the
// others to finish their request, or for ctx; then it closes what is left
// and returns ctx's error.
func (l *httpLoop) Shutdown(ctx context.Context) error {
	l.stop(net.ErrClosed)
	l.mu.Lock()
	l.closing.Store(true)
	for lc := range l.conns {
		if lc.idle.Load() {
			lc.c.SetReadDeadline(time.Now()) // wakes the reader, which ends
		}
	}
	l.mu.Unlock()
	for {
		l.mu.Lock()
		n := len(l.conns)
		l.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-l.gone:
		case <-ctx.Done():
			l.Close()
			return ctx.Err()
		}
	}
}

// Close stops accepting and closes every connection of the loop at once.
func (l *httpLoop) Close() error {
	l.stop(net.ErrClosed)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closing.Store(true)
	for lc := range l.conns {
		lc.c.Close()
	}
	return nil
}

// loopConn is one connection served by the loop.
type loopConn struct {
	l      *httpLoop
	c      net.Conn
	idle   atomic.Bool // between requests: Shutdown may close it
	src    connSource
	br     *bufio.Reader
	remote string
	ctx    context.Context // ends when the client is gone or the loop closes
	cancel context.CancelFunc
	endReq context.CancelFunc // ends the context of the request being served
	w      loopWriter
	watch  watcher
}

func newLoopConn(l *httpLoop, c net.Conn) *loopConn {
	lc := &loopConn{l: l, c: c}
	if a := c.RemoteAddr(); a != nil {
		lc.remote = a.String()
	}
	lc.src.c = c
	lc.br = bufio.NewReaderSize(&lc.src, loopReadBuffer)
	lc.ctx, lc.cancel = context.WithCancel(context.Background())
	lc.w.lc = lc
	lc.watch.lc = lc
	return lc
}

// serve answers requests until the connection closes or goes to net/http.
func (lc *loopConn) serve() {
	handed := false
	defer func() {
		if p := recover(); p != nil && p != http.ErrAbortHandler {
			lc.l.logf("http: panic serving %s: %v\n%s", lc.remote, p, debug.Stack())
		}
		lc.cancel()
		if !handed {
			lc.c.Close()
		}
		lc.l.untrack(lc)
	}()
	for first := true; ; first = false {
		// Idle first, then the check: Shutdown sets closing first, then
		// looks for idle connections, so one of the two sees the other.
		lc.idle.Store(true)
		if lc.l.isClosing() || !lc.waitRequest(first) {
			return
		}
		r, n, err := lc.readHead()
		lc.idle.Store(false) // busy now, or net/http's: Shutdown leaves it alone
		if errors.Is(err, errHandoff) {
			handed = lc.handOff()
			return
		}
		if err != nil {
			return
		}
		lc.br.Discard(n)
		if !lc.answer(r) {
			return
		}
	}
}

// waitRequest waits for the first byte of the next request.
func (lc *loopConn) waitRequest(first bool) bool {
	wait := lc.l.idle
	if first {
		wait = lc.l.readHeader
	}
	lc.c.SetReadDeadline(deadline(wait))
	if lc.l.isClosing() {
		return false // Shutdown may have woken the reader before the deadline above
	}
	if _, err := lc.br.Peek(1); err != nil {
		return false
	}
	if buf, _ := lc.br.Peek(lc.br.Buffered()); !first && headEnd(buf) < 0 {
		// The rest of the head is still to come, within readHeader.
		lc.c.SetReadDeadline(deadline(lc.l.readHeader))
	}
	return true
}

func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// handOff gives the connection, with what was read of it, to net/http. It
// returns false when net/http no longer accepts.
func (lc *loopConn) handOff() bool {
	lc.c.SetReadDeadline(time.Time{})
	buffered, _ := lc.br.Peek(lc.br.Buffered())
	// What the watcher read comes after what the reader holds.
	hc := &handedConn{Conn: lc.c, prefix: append(bytes.Clone(buffered), lc.src.pending...)}
	lc.src.pending = nil
	select {
	case lc.l.handoff <- hc:
		return true
	case <-lc.l.done:
		return false
	}
}

// answer serves r; it returns false when the connection must close.
func (lc *loopConn) answer(r *http.Request) bool {
	w := &lc.w
	w.reset(r)
	lc.watch.arm()
	lc.l.h.ServeHTTP(w, r)
	lc.endReq()
	gone := lc.watch.disarm()
	ok := w.finish() == nil
	w.release()
	// A client gone may have half-closed after a pipeline: what it sent is
	// answered, as net/http answers it, and the reader then sees the end.
	return ok && !(gone && lc.br.Buffered() == 0) && !w.closeAfter
}

// readHead parses the request head at the start of the buffer and returns
// the request and the head's length. Anything but a plain request is
// errHandoff, with nothing consumed.
func (lc *loopConn) readHead() (*http.Request, int, error) {
	for {
		buf, _ := lc.br.Peek(lc.br.Buffered())
		if end := headEnd(buf); end >= 0 {
			r, err := lc.parseHead(buf[:end])
			return r, end, err
		}
		if len(buf) >= lc.br.Size() {
			return nil, 0, errHandoff // a long head: net/http gives 431 when it must
		}
		if _, err := lc.br.Peek(len(buf) + 1); err != nil {
			return nil, 0, err
		}
	}
}

// connSource is what the connection's reader reads: the bytes the watcher
// read while requests ran, then the connection.
type connSource struct {
	c       net.Conn
	pending []byte // a byte per watch that ended while the reader held the next request
}

func (s *connSource) Read(p []byte) (int, error) {
	if len(s.pending) > 0 && len(p) > 0 {
		n := copy(p, s.pending)
		s.pending = s.pending[n:]
		return n, nil
	}
	return s.c.Read(p)
}

// handedConn is a connection given to net/http: what the loop read of it
// comes first.
type handedConn struct {
	net.Conn
	prefix []byte
}

func (c *handedConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite lets net/http half-close the connection after an error
// answer, as with the connection it wraps.
func (c *handedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps sendfile for net/http's file answers.
func (c *handedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// watcher notices a client that goes away while its request runs, as
// net/http does, but only for requests still running after watchAfter: a
// hit is long done by then and costs no extra read.
type watcher struct {
	lc    *loopConn
	timer *time.Timer
	mu    sync.Mutex // guards the fields below
	over  bool       // the request ended; no watch may start
	done  chan struct{}
	gone  atomic.Bool
	one   [1]byte
}

func (wt *watcher) arm() {
	wt.mu.Lock()
	wt.over, wt.done = false, nil
	wt.mu.Unlock()
	// Even with the next request buffered already: a client that sends
	// two and goes away is noticed, as net/http notices it. The byte the
	// watch reads comes after those buffered.
	if wt.timer == nil {
		wt.timer = time.AfterFunc(watchAfter, wt.start)
		return
	}
	wt.timer.Reset(watchAfter)
}

func (wt *watcher) start() {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	if wt.over || wt.done != nil {
		return
	}
	wt.done = make(chan struct{})
	wt.lc.c.SetReadDeadline(time.Time{})
	go wt.read(wt.done)
}

func (wt *watcher) read(done chan struct{}) {
	defer close(done)
	n, err := wt.lc.c.Read(wt.one[:])
	if n == 1 {
		// The next request began; with requests buffered, behind them.
		wt.lc.src.pending = append(wt.lc.src.pending, wt.one[0])
		return
	}
	wt.mu.Lock()
	over := wt.over
	wt.mu.Unlock()
	if !(over && errors.Is(err, os.ErrDeadlineExceeded)) {
		wt.gone.Store(true)
		wt.lc.cancel()
	}
}

// disarm ends the watch of a request; it reports whether the client went
// away meanwhile.
func (wt *watcher) disarm() bool {
	if wt.timer != nil {
		wt.timer.Stop()
	}
	wt.mu.Lock()
	wt.over = true
	done := wt.done
	wt.mu.Unlock()
	if done != nil {
		wt.lc.c.SetReadDeadline(time.Unix(1, 0))
		<-done
		wt.lc.c.SetReadDeadline(time.Time{})
	}
	return wt.gone.Load()
}

// isClosing reports whether the loop is shutting down.
func (l *httpLoop) isClosing() bool { return l.closing.Load() }
