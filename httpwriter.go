// httpwriter.go is the HTTP/1.1 loop's ResponseWriter: it frames answers
// (length, chunks, HEAD), writes small ones in one system call and files
// with sendfile.
package main

import (
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

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

// reset readies w for the answer to r; release emptied it after the last.
func (w *loopWriter) reset(r *http.Request) {
	if w.header == nil {
		w.header = make(http.Header, 16)
	}
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

// WriteHeader starts the answer. Unlike net/http's, it does not sniff a
// missing Content-Type (Katana's handler always sets one).
//
// TODO: informational answers (1xx, such as 103 Early Hints) are dropped:
// Katana sends none. Sending one needs its head written at once, before
// the final one; do that when the handler starts to send hints.
func (w *loopWriter) WriteHeader(code int) {
	if w.wrote || code < 200 {
		return // a second header is ignored, as net/http ignores it
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
	w.written += int64(len(p))
	if w.r.Method == http.MethodHead {
		return len(p), nil // counted, as net/http counts it, and not sent
	}
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
	if err := w.check(0); err != nil {
		return 0, err
	}
	rf, ok := w.lc.c.(io.ReaderFrom)
	if w.r.Method == http.MethodHead || w.open || w.chunked || w.shared != nil || !ok {
		return io.Copy(struct{ io.Writer }{w}, src) // through Write (HEAD: counted, not sent)
	}
	if isFile(src) {
		return w.sendFile(rf, src)
	}
	return w.readIn(src)
}

// sendFile flushes the head and sends src, a file, by sendfile: no more
// than the declared length, in the one-level shape sendfile recognises.
func (w *loopWriter) sendFile(rf io.ReaderFrom, src io.Reader) (int64, error) {
	if w.flush(); w.err != nil {
		return 0, w.err
	}
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

// readIn reads src straight into the answer's buffer, flushing as it fills.
func (w *loopWriter) readIn(src io.Reader) (int64, error) {
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
