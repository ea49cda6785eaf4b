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
	"math"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
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
	hc := &handedConn{Conn: lc.c, prefix: bytes.Clone(buffered)}
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
	return ok && !gone && !w.closeAfter
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

// headEnd returns the length of the request head in buf, or -1 when buf
// does not hold a whole head yet. A head ends at an empty line.
func headEnd(buf []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if bytes.HasPrefix(buf[i:], []byte("\r\n")) {
			return i + 2
		}
		if bytes.HasPrefix(buf[i:], []byte("\n")) {
			return i + 1
		}
	}
}

// parseHead reads a request head, taking only what the loop serves:
// RFC 9112 request lines for GET and HEAD in origin form over HTTP/1.1,
// header lines ending in CRLF, one valid Host, no body and no upgrade. The
// strings of the request share one copy of the head.
func (lc *loopConn) parseHead(b []byte) (*http.Request, error) {
	head := string(b)
	line, rest, _ := strings.Cut(head, "\r\n")
	method, target, ok := splitRequestLine(line)
	if !ok || !plainTarget(target) {
		return nil, errHandoff
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, errHandoff
	}
	h, host, closeAfter, err := parseHeader(rest)
	if err != nil {
		return nil, err
	}
	r := &http.Request{Method: method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, Host: host, RemoteAddr: lc.remote,
		RequestURI: target, Close: closeAfter}
	// As with net/http, the context ends with the connection or when
	// ServeHTTP returns.
	ctx, end := context.WithCancel(traceContext(lc.ctx))
	lc.endReq = end
	return r.WithContext(ctx), nil
}

// splitRequestLine splits a GET or HEAD request line of HTTP/1.1.
func splitRequestLine(line string) (method, target string, ok bool) {
	switch {
	case strings.HasPrefix(line, "GET "):
		method, line = http.MethodGet, line[4:]
	case strings.HasPrefix(line, "HEAD "):
		method, line = http.MethodHead, line[5:]
	default:
		return "", "", false
	}
	target, ok = strings.CutSuffix(line, " HTTP/1.1")
	return method, target, ok
}

// plainTarget reports whether t is an origin-form target of visible ASCII.
func plainTarget(t string) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f || t[i] == '#' {
			return false
		}
	}
	return true
}

// parseHeader reads the header lines of a plain request (each ending in
// CRLF, the head's empty line last). Fields that bring a body, an upgrade
// or anything net/http would refuse are errHandoff.
func parseHeader(lines string) (h http.Header, host string, closeAfter bool, err error) {
	h = make(http.Header, strings.Count(lines, "\n"))
	hosts := 0
	for len(lines) > 0 {
		var line string
		var ok bool
		if line, lines, ok = strings.Cut(lines, "\r\n"); !ok {
			return nil, "", false, errHandoff // a bare LF
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !validFieldName(name) || !validFieldValue(value) {
			return nil, "", false, errHandoff
		}
		key := canonicalKey(name)
		v := strings.Trim(value, " \t")
		switch key {
		case "Host":
			hosts++
			host = v
			continue // net/http keeps it in Request.Host only
		case "Content-Length":
			if v != "0" || len(h[key]) > 0 {
				return nil, "", false, errHandoff // a body, or two lengths
			}
		case "Transfer-Encoding", "Expect", "Upgrade":
			return nil, "", false, errHandoff
		case "Connection":
			for tok := range strings.SplitSeq(v, ",") {
				switch strings.ToLower(strings.Trim(tok, " \t")) {
				case "close":
					closeAfter = true
				case "upgrade":
					return nil, "", false, errHandoff
				}
			}
		}
		h[key] = append(h[key], v)
	}
	if hosts != 1 || !validHost(host) {
		return nil, "", false, errHandoff // net/http answers 400
	}
	return h, host, closeAfter, nil
}

// commonKeys are the canonical forms of the fields clients send most.
var commonKeys = []string{"Host", "User-Agent", "Accept", "Accept-Encoding",
	"Accept-Language", "Connection", "Cache-Control", "If-None-Match",
	"If-Modified-Since", "Referer", "Cookie", "Pragma", "Via", "X-Forwarded-For",
	"Content-Length", "Range"}

// canonicalKey returns the canonical form of a field name, without a copy
// for the common ones.
func canonicalKey(name string) string {
	for _, k := range commonKeys {
		if len(k) == len(name) && strings.EqualFold(k, name) {
			return k
		}
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

// validFieldName reports whether b is a token (RFC 9110 section 5.1).
func validFieldName(b string) bool {
	if len(b) == 0 {
		return false
	}
	for i := range len(b) {
		if !tokenBytes[b[i]] {
			return false
		}
	}
	return true
}

var tokenBytes, hostBytes = byteSet("!#$%&'*+-.^_`|~"), byteSet("-._~:[]!$&'()*+,;=%")

// byteSet returns the letters, the digits and extra as a lookup table.
func byteSet(extra string) (set [256]bool) {
	for c := range 256 {
		set[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	for i := range len(extra) {
		set[extra[i]] = true
	}
	return set
}

// validFieldValue reports whether b holds no control bytes but tab
// (RFC 9110 section 5.5).
func validFieldValue(b string) bool {
	for i := range len(b) {
		if c := b[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost accepts the characters of a host and port (RFC 3986 section
// 3.2.2) and an empty value; anything else goes to net/http.
func validHost(h string) bool {
	for i := range len(h) {
		if !hostBytes[h[i]] {
			return false
		}
	}
	return true
}

// connSource is what the connection's reader reads: the connection, after
// a byte the watcher read while a request ran.
type connSource struct {
	c       net.Conn
	pending []byte // at most one byte
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
		wt.lc.src.pending = wt.one[:1] // the next request began
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

// loopWriter is the http.ResponseWriter of the loop. An answer whose length
// is known goes out in one write when it is small (the status line, header
// and body together) and by sendfile when its body is a file; one whose
// length is not known is held up to loopFlushAt and then sent chunked.
type loopWriter struct {
	lc         *loopConn
	r          *http.Request
	header     http.Header
	status     int
	wrote      bool  // the header was written (to out or the wire)
	open       bool  // the header waits for its length; the body is in body
	chunked    bool  // the body goes out in chunks
	declared   int64 // Content-Length the handler set; -1 none
	written    int64 // body bytes the handler wrote
	closeAfter bool
	out        []byte // bytes for the wire
	body       []byte // body held while open
	shared     []byte // the body, after out, when given by WriteShared
	err        error  // first write error; later writes fail with it
}

func (w *loopWriter) reset(r *http.Request) {
	if w.header == nil {
		w.header = make(http.Header, 16)
	}
	clear(w.header)
	*w = loopWriter{lc: w.lc, r: r, header: w.header,
		out: w.out[:0], body: w.body[:0], declared: -1, closeAfter: r.Close}
}

// keptBuffer is the most buffer an idle connection keeps: enough for the
// head of an answer, whose body goes out from where the cache holds it.
const keptBuffer = 16 << 10

// release lets go of what the answer held, and of large buffers: a
// connection may then wait idle for minutes.
func (w *loopWriter) release() {
	w.r, w.shared = nil, nil
	clear(w.header)
	if cap(w.out) > keptBuffer {
		w.out = nil
	}
	if cap(w.body) > keptBuffer {
		w.body = nil
	}
}

func (w *loopWriter) Header() http.Header { return w.header }

func (w *loopWriter) WriteHeader(code int) {
	if w.wrote || code < 200 {
		return // informational answers are not sent; a second header is ignored
	}
	w.wrote, w.status = true, code
	h := w.header
	if cl := h["Content-Length"]; len(cl) > 0 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			w.declared = n
		} else {
			delete(h, "Content-Length")
		}
	}
	if hasToken(h["Connection"], "close") || w.lc.l.isClosing() {
		w.closeAfter = true
	}
	w.out = appendHead(w.out, code, h, w.closeAfter)
	// Without a length, the head waits: the body, or for HEAD the count of
	// what the handler wrote, gives it one.
	w.open = w.bodyAllowed() && w.declared < 0
	if !w.open {
		w.out = append(w.out, "\r\n"...)
	}
}

func (w *loopWriter) bodyAllowed() bool {
	return w.status != http.StatusNoContent && w.status != http.StatusNotModified
}

func (w *loopWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if err := w.check(len(p)); err != nil {
		return 0, err
	}
	if w.r.Method == http.MethodHead {
		w.written += int64(len(p)) // counted, as net/http counts it, and not sent
		return len(p), nil
	}
	w.written += int64(len(p))
	if w.open {
		w.body = append(w.body, p...)
		if len(w.body) >= loopFlushAt {
			w.startChunks()
		}
		return len(p), w.err
	}
	if w.shared != nil {
		w.flush() // keeps the bytes in order
	}
	if w.chunked {
		w.out = appendHTTPChunk(w.out, p)
	} else {
		w.out = append(w.out, p...)
	}
	if len(w.out) >= loopFlushAt {
		w.flush()
	}
	return len(p), w.err
}

// WriteShared writes p, which its caller leaves unchanged until the
// answer is finished: a body the cache holds goes out from where it is,
// with the head in the same system call.
func (w *loopWriter) WriteShared(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.open || w.chunked || w.shared != nil || w.r.Method == http.MethodHead {
		return w.Write(p)
	}
	if err := w.check(len(p)); err != nil {
		return 0, err
	}
	w.written += int64(len(p))
	w.shared = p
	return len(p), nil
}

// check says whether n more body bytes may be written.
func (w *loopWriter) check(n int) error {
	switch {
	case w.err != nil:
		return w.err
	case !w.bodyAllowed():
		return http.ErrBodyNotAllowed
	case w.declared >= 0 && w.written+int64(n) > w.declared:
		return http.ErrContentLength
	}
	return nil
}

// ReadFrom sends a file body with sendfile and reads any other straight
// into the answer's buffer.
func (w *loopWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if err := w.check(0); err != nil || w.r.Method == http.MethodHead {
		return 0, err
	}
	rf, ok := w.lc.c.(io.ReaderFrom)
	if w.open || w.chunked || w.shared != nil || !ok {
		return io.Copy(struct{ io.Writer }{w}, src)
	}
	if isFile(src) {
		if w.flush(); w.err != nil {
			return 0, w.err
		}
		// No more than the declared length, in the one-level shape
		// sendfile recognises.
		lr, ok := src.(*io.LimitedReader)
		if !ok {
			lr = &io.LimitedReader{R: src, N: math.MaxInt64}
		}
		capped := &io.LimitedReader{R: lr.R, N: min(lr.N, w.declared-w.written)}
		n, err := rf.ReadFrom(capped)
		lr.N -= n
		w.written += n
		if err != nil {
			w.err = err
		}
		return n, err
	}
	var total int64
	for {
		if cap(w.out)-len(w.out) < 4<<10 {
			w.out = slices.Grow(w.out, 32<<10)
		}
		n, err := src.Read(w.out[len(w.out):cap(w.out)])
		if cerr := w.check(n); cerr != nil {
			return total, cerr
		}
		w.out = w.out[:len(w.out)+n]
		w.written += int64(n)
		total += int64(n)
		if len(w.out) >= loopFlushAt {
			w.flush()
		}
		switch {
		case err == io.EOF:
			return total, w.err
		case err != nil:
			return total, err
		case w.err != nil:
			return total, w.err
		}
	}
}

// isFile reports whether src is a file, or a file under a limit, the shapes
// for which the connection's ReadFrom uses sendfile.
func isFile(src io.Reader) bool {
	if lr, ok := src.(*io.LimitedReader); ok {
		src = lr.R
	}
	_, ok := src.(*os.File)
	return ok
}

// startChunks sends the held header and body and goes on in chunks.
func (w *loopWriter) startChunks() {
	w.open, w.chunked = false, true
	w.out = append(w.out, "Transfer-Encoding: chunked\r\n\r\n"...)
	w.out = appendHTTPChunk(w.out, w.body)
	w.body = w.body[:0]
	w.flush()
}

func appendHTTPChunk(b, p []byte) []byte {
	if len(p) == 0 {
		return b
	}
	b = strconv.AppendInt(b, int64(len(p)), 16)
	b = append(b, "\r\n"...)
	b = append(b, p...)
	return append(b, "\r\n"...)
}

func (w *loopWriter) flush() {
	if w.err != nil {
		return
	}
	switch {
	case w.shared != nil:
		w.err = writeBuffers(w.lc.c, net.Buffers{w.out, w.shared})
		w.shared = nil
	case len(w.out) > 0:
		_, w.err = w.lc.c.Write(w.out)
	}
	w.out = w.out[:0]
}

// writeBuffers writes bufs to c, in one system call where it can.
func writeBuffers(c net.Conn, bufs net.Buffers) error {
	if sc, ok := c.(*stallConn); ok {
		return sc.writeBuffers(bufs)
	}
	_, err := bufs.WriteTo(c)
	return err
}

// finish completes the answer after the handler returned.
func (w *loopWriter) finish() error {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	switch {
	case w.open && w.r.Method == http.MethodHead:
		if w.written > 0 { // what a GET would have sent
			w.out = append(w.out, "Content-Length: "...)
			w.out = strconv.AppendInt(w.out, w.written, 10)
			w.out = append(w.out, "\r\n"...)
		}
		w.out = append(w.out, "\r\n"...)
	case w.open:
		w.out = append(w.out, "Content-Length: "...)
		w.out = strconv.AppendInt(w.out, int64(len(w.body)), 10)
		w.out = append(w.out, "\r\n\r\n"...)
		w.out = append(w.out, w.body...)
	case w.chunked:
		w.out = append(w.out, "0\r\n\r\n"...)
	case w.declared >= 0 && w.written < w.declared && w.bodyAllowed() &&
		w.r.Method != http.MethodHead:
		w.closeAfter = true // a short body: the client sees the connection end
	}
	w.flush()
	return w.err
}

// isClosing reports whether the loop is shutting down.
func (l *httpLoop) isClosing() bool { return l.closing.Load() }

// appendHead appends the status line and header fields, with the Date when
// the handler set none; the empty line that ends the head is left to the
// caller. The fields come in map order, as RFC 9110 section 5.3 allows.
func appendHead(b []byte, code int, h http.Header, closeAfter bool) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	b = append(b, "\r\n"...)
	for k, vs := range h {
		if k == "Connection" || !validFieldName(k) {
			continue // a name that is no token would end the field early, as net/http knows
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = appendFieldValue(b, v)
			b = append(b, "\r\n"...)
		}
	}
	if _, ok := h["Date"]; !ok {
		b = append(b, "Date: "...)
		b = append(b, httpTime(time.Now())...)
		b = append(b, "\r\n"...)
	}
	if closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	return b
}

// hasToken reports whether one of the comma-separated lists vs holds tok,
// in any case.
func hasToken(vs []string, tok string) bool {
	for _, v := range vs {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.Trim(t, " \t"), tok) {
				return true
			}
		}
	}
	return false
}

// appendFieldValue appends v with line breaks turned to spaces, as net/http
// writes them.
func appendFieldValue(b []byte, v string) []byte {
	if strings.IndexByte(v, '\r') < 0 && strings.IndexByte(v, '\n') < 0 {
		return append(b, v...)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}
