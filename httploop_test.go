// httploop_test.go drives the HTTP/1.1 loop over real connections on
// 127.0.0.1: what it serves itself, what it hands to net/http, how it frames
// answers and how it ends connections; FuzzLoopHead holds its head parser to
// net/http's.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// loopHang bounds every wait of these tests: reaching it is a failure (a
// hang), never a measure of speed.
const loopHang = 5 * time.Second

// loopServer is a loop on 127.0.0.1 and the http.Server it hands
// connections to, wired as serve() in main.go wires them.
type loopServer struct {
	loop *httpLoop
	srv  *http.Server
	addr string
	log  *syncBuffer // srv.ErrorLog
}

// startLoop serves h through a loop; adjust may change the server before
// the loop reads its timeouts. Every answer carries X-Via: loop or net/http.
func startLoop(t *testing.T, h http.Handler, adjust func(*http.Server)) *loopServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls := &loopServer{addr: ln.Addr().String(), log: &syncBuffer{}}
	ls.srv = &http.Server{Handler: markVia(h), ReadHeaderTimeout: 2 * loopHang,
		IdleTimeout: 2 * loopHang, MaxHeaderBytes: 64 << 10,
		ErrorLog: log.New(ls.log, "", 0)}
	if adjust != nil {
		adjust(ls.srv)
	}
	ls.loop = newHTTPLoop(stallListener(ln, 2*loopHang), ls.srv.Handler, ls.srv)
	go ls.srv.Serve(ls.loop.Listener())
	t.Cleanup(func() { ls.loop.Close(); ls.srv.Close() })
	return ls
}

// markVia tells in X-Via which server answered.
func markVia(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		via := "net/http"
		if _, ok := w.(*loopWriter); ok {
			via = "loop"
		}
		w.Header().Set("X-Via", via)
		h.ServeHTTP(w, r)
	})
}

// echo answers "method path host proto|body".
func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%s %s %s %s|%s", r.Method, r.URL.Path, r.Host, r.Proto, body)
}

// loopClient is a raw TCP client of the loop.
type loopClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialLoop(t *testing.T, addr string) *loopClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(loopHang))
	t.Cleanup(func() { c.Close() })
	return &loopClient{t: t, c: c, br: bufio.NewReader(c)}
}

func (cl *loopClient) send(s string) {
	cl.t.Helper()
	if _, err := io.WriteString(cl.c, s); err != nil {
		cl.t.Fatalf("write: %v", err)
	}
}

// read reads one answer to a request of method and its whole body.
func (cl *loopClient) read(method string) (*http.Response, string) {
	cl.t.Helper()
	resp, body, err := cl.readErr(method)
	if err != nil {
		cl.t.Fatalf("reading the answer to %s: %v", method, err)
	}
	return resp, body
}

func (cl *loopClient) readErr(method string) (*http.Response, string, error) {
	resp, err := http.ReadResponse(cl.br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// wantClosed fails unless the server closes the connection with nothing
// more to read.
func (cl *loopClient) wantClosed() {
	cl.t.Helper()
	b, err := cl.br.ReadByte()
	var ne net.Error
	switch {
	case err == nil:
		rest, _ := cl.br.Peek(cl.br.Buffered())
		cl.t.Fatalf("connection still sends %q, want it closed", append([]byte{b}, rest...))
	case errors.As(err, &ne) && ne.Timeout():
		cl.t.Fatalf("connection still open after %v, want it closed", loopHang)
	}
}

// wantVia fails unless resp came from the named server.
func wantVia(t *testing.T, resp *http.Response, via string) {
	t.Helper()
	if got := resp.Header.Get("X-Via"); got != via {
		t.Errorf("X-Via = %q, want %s", got, via)
	}
}

// echoGet is a plain GET of echo, and echoed its answer.
const echoGet, echoed = "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", "GET /echo t HTTP/1.1|"

// paddedHead is a GET head of exactly n bytes.
func paddedHead(n int) string {
	const start, end = "GET /echo HTTP/1.1\r\nHost: t\r\nX-Pad: ", "\r\n\r\n"
	return start + strings.Repeat("a", n-len(start)-len(end)) + end
}

// TestLoopHandoff sends what the loop must not serve itself and checks
// net/http answers it, then (when the connection stays) that a plain GET
// on the same connection is answered too.
func TestLoopHandoff(t *testing.T) {
	ls := startLoop(t, http.HandlerFunc(echo), nil)
	for _, tc := range []struct {
		name, req string
		status    int
		via, body string // via "" for an answer net/http makes itself
		closed    bool   // the server closes the connection after the answer
	}{
		{"POST with a body", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
			200, "net/http", "POST /echo t HTTP/1.1|hello", false},
		{"HTTP/1.0", "GET /echo HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n",
			200, "net/http", "GET /echo t HTTP/1.0|", false},
		{"GET with a chunked body", "GET /echo HTTP/1.1\r\nHost: t\r\n" +
			"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			200, "net/http", "GET /echo t HTTP/1.1|hello", false},
		{"GET with a body", "GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi",
			200, "net/http", "GET /echo t HTTP/1.1|hi", false},
		{"GET with Content-Length 0", "GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
			200, "loop", echoed, false},
		{"GET with Expect", "GET /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n",
			200, "net/http", echoed, false},
		{"head of 8 KiB", paddedHead(loopReadBuffer), 200, "loop", echoed, false},
		{"head of 8 KiB and a byte", paddedHead(loopReadBuffer + 1),
			200, "net/http", echoed, false},
		{"head of 40 KiB", paddedHead(40 << 10), 200, "net/http", echoed, false},
		// Only the status of the 431: see TestLoopHandedConnCloseWrite.
		{"head of 80 KiB", paddedHead(80 << 10), 431, "", "", false},
		{"bare LF", "GET /echo HTTP/1.1\nHost: t\n\n", 200, "net/http", echoed, false},
		{"bare LF ending the head", "GET /echo HTTP/1.1\r\nHost: t\r\n\n",
			200, "net/http", echoed, false},
		{"folded header line", "GET /echo HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
			200, "net/http", echoed, false},
		{"absolute form", "GET http://t/echo HTTP/1.1\r\nHost: other\r\n\r\n",
			200, "net/http", echoed, false},
		{"missing Host", "GET /echo HTTP/1.1\r\nX-A: b\r\n\r\n", 400, "", "", true},
		{"two Hosts", "GET /echo HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n", 400, "", "", true},
		{"Host with a space", "GET /echo HTTP/1.1\r\nHost: t u\r\n\r\n", 400, "", "", true},
		{"control byte in a value", "GET /echo HTTP/1.1\r\nHost: t\r\nX-A: a\x01b\r\n\r\n",
			400, "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := dialLoop(t, ls.addr)
			cl.send(tc.req)
			method, _, _ := strings.Cut(tc.req, " ")
			resp, err := http.ReadResponse(cl.br, &http.Request{Method: method})
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.via == "" {
				if tc.closed {
					io.Copy(io.Discard, resp.Body) // net/http's error text, to EOF
					cl.wantClosed()
				}
				return
			}
			wantVia(t, resp, tc.via)
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading the body: %v", err)
			}
			body := string(b)
			if body != tc.body {
				t.Errorf("body = %q, want %q", body, tc.body)
			}
			cl.send(echoGet)
			resp, body = cl.read(http.MethodGet)
			if resp.StatusCode != 200 || body != echoed {
				t.Errorf("second request = %d %q, want 200 and the echo", resp.StatusCode, body)
			}
			wantVia(t, resp, tc.via)
		})
	}
}

// TestLoopExpectContinue sends a body only after net/http's 100 Continue.
func TestLoopExpectContinue(t *testing.T) {
	ls := startLoop(t, http.HandlerFunc(echo), nil)
	cl := dialLoop(t, ls.addr)
	cl.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	resp, _ := cl.read(http.MethodPost)
	if resp.StatusCode != http.StatusContinue {
		t.Fatalf("first answer = %d, want 100", resp.StatusCode)
	}
	cl.send("hello")
	resp, body := cl.read(http.MethodPost)
	if resp.StatusCode != 200 || body != "POST /echo t HTTP/1.1|hello" {
		t.Fatalf("answer = %d %q, want 200 and the echo of hello", resp.StatusCode, body)
	}
	cl.send(echoGet)
	if resp, body = cl.read(http.MethodGet); body != echoed {
		t.Errorf("second request = %d %q, want the echo", resp.StatusCode, body)
	}
}

// sized answers /sized?n=N&seed=S with N bytes of a pattern, written in
// pieces of 1000 bytes, with a Content-Length when declare=1 and through
// ReadFrom when from=1.
func sized(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, _ := strconv.Atoi(q.Get("n"))
	seed, _ := strconv.Atoi(q.Get("seed"))
	body := bodyPattern(n, byte(seed))
	if q.Get("declare") == "1" {
		w.Header().Set("Content-Length", strconv.Itoa(n))
	}
	if q.Get("from") == "1" {
		io.Copy(w, struct{ io.Reader }{bytes.NewReader(body)}) // no WriterTo: w's ReadFrom
		return
	}
	for len(body) > 0 {
		k := min(len(body), 1000)
		if _, err := w.Write(body[:k]); err != nil {
			return
		}
		body = body[k:]
	}
}

// bodyPattern is n bytes that differ between seeds and repeat only every
// 251 bytes.
func bodyPattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i%251) ^ seed
	}
	return b
}

// TestLoopPipelining sends three GETs in one write and reads three answers
// in order, each framed differently.
func TestLoopPipelining(t *testing.T) {
	ls := startLoop(t, http.HandlerFunc(sized), nil)
	cl := dialLoop(t, ls.addr)
	targets := []struct {
		query string
		n     int
	}{{"n=10&seed=1", 10}, {"n=150000&seed=2", 150000}, {"n=70000&seed=3&declare=1", 70000}}
	var reqs strings.Builder
	for _, tc := range targets {
		reqs.WriteString("GET /sized?" + tc.query + " HTTP/1.1\r\nHost: t\r\n\r\n")
	}
	cl.send(reqs.String())
	for i, tc := range targets {
		resp, body := cl.read(http.MethodGet)
		wantVia(t, resp, "loop")
		if body != string(bodyPattern(tc.n, byte(i+1))) {
			t.Errorf("answer %d (%s): %d bytes, want %d of its own", i, tc.query, len(body), tc.n)
		}
	}
}

// TestLoopClientClose: a request with Connection: close gets it back and
// the connection ends; a request pipelined after it is not answered.
func TestLoopClientClose(t *testing.T) {
	ls := startLoop(t, http.HandlerFunc(echo), nil)
	cl := dialLoop(t, ls.addr)
	cl.send("GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + echoGet)
	resp, body := cl.read(http.MethodGet)
	wantVia(t, resp, "loop")
	if !resp.Close || body != echoed {
		t.Errorf("answer: Close = %v, body %q; want Connection: close and the echo",
			resp.Close, body)
	}
	cl.wantClosed()
}

// TestLoopHandlerClose: a handler's Connection: close ends the connection.
func TestLoopHandlerClose(t *testing.T) {
	for _, value := range []string{"close", "Close"} {
		t.Run(value, func(t *testing.T) {
			if value == "Close" {
			}
			ls := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", value)
				io.WriteString(w, "bye")
			}), nil)
			cl := dialLoop(t, ls.addr)
			cl.send(echoGet + echoGet)
			resp, body := cl.read(http.MethodGet)
			wantVia(t, resp, "loop")
			if !resp.Close || body != "bye" {
				t.Errorf("answer: Close = %v, body %q; want Connection: close and bye",
					resp.Close, body)
			}
			cl.wantClosed()
		})
	}
}

// katanaPhoto is Katana's handler with the flower photo cached as a source.
func katanaPhoto(t *testing.T) (*testKatana, []byte) {
	t.Helper()
	o := newTestOrigin(t)
	photo := readPhoto(t, "flower-1920x1080.jpg")
	o.put("/img/flower.jpg", photo, "Cache-Control", "max-age=3600", "ETag", `"f1"`)
	k := newKatana(t, o, nil)
	resp, body := k.get(t, "/img/flower.jpg")
	wantStatus(t, resp, body, http.StatusOK)
	return k, photo
}

// TestLoopHEAD: HEAD of a cached photo has the GET's Content-Length and no
// body; the GET pipelined after it comes back whole, byte for byte.
func TestLoopHEAD(t *testing.T) {
	k, photo := katanaPhoto(t)
	ls := startLoop(t, k.s, nil)
	cl := dialLoop(t, ls.addr)
	const req = " /img/flower.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
	cl.send("HEAD" + req + "GET" + req)
	head, body := cl.read(http.MethodHead)
	wantVia(t, head, "loop")
	if head.StatusCode != 200 || body != "" {
		t.Fatalf("HEAD = %d with %d body bytes, want 200 and none", head.StatusCode, len(body))
	}
	get, body := cl.read(http.MethodGet)
	wantVia(t, get, "loop")
	if got, want := head.Header.Get("Content-Length"), strconv.Itoa(len(photo)); got != want {
		t.Errorf("HEAD Content-Length = %q, want %s", got, want)
	}
	if get.ContentLength != int64(len(photo)) || body != string(photo) {
		t.Errorf("GET: Content-Length %d, %d body bytes; want the photo's %d bytes",
			get.ContentLength, len(body), len(photo))
	}
}

// TestLoopHEADUnknownLength: HEAD of an answer the handler writes without
// a length sends no body and no chunks; the next request is read right.
func TestLoopHEADUnknownLength(t *testing.T) {
	ls := startLoop(t, http.HandlerFunc(sized), nil)
	cl := dialLoop(t, ls.addr)
	cl.send("HEAD /sized?n=100000 HTTP/1.1\r\nHost: t\r\n\r\n" + echoGet)
	resp, _ := cl.read(http.MethodHead)
	wantVia(t, resp, "loop")
	if len(resp.TransferEncoding) != 0 {
		t.Errorf("HEAD Transfer-Encoding = %v, want none", resp.TransferEncoding)
	}
	if resp, body := cl.read(http.MethodGet); resp.StatusCode != 200 || body != "" {
		t.Errorf("GET after HEAD = %d %q, want 200 and an empty body", resp.StatusCode, body)
	}
}

// TestLoopHEADLengthAsGET checks that HEAD of an answer written without a
// length carries the Content-Length a GET gets, as net/http counts it:
// Katana's error answers are written so.
func TestLoopHEADLengthAsGET(t *testing.T) {
	for _, n := range []int{10, 3000} {
		ls := startLoop(t, http.HandlerFunc(sized), nil)
		cl := dialLoop(t, ls.addr)
		path := fmt.Sprintf("/sized?n=%d", n)
		cl.send("GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n")
		get, body := cl.read(http.MethodGet)
		cl.send("HEAD " + path + " HTTP/1.1\r\nHost: t\r\n\r\n")
		head, hbody := cl.read(http.MethodHead)
		wantVia(t, head, "loop")
		if len(body) != n || get.ContentLength != int64(n) {
			t.Fatalf("GET %s = %d bytes, Content-Length %d; want %d", path, len(body),
				get.ContentLength, n)
		}
		if head.Header.Get("Content-Length") != strconv.Itoa(n) || hbody != "" {
			t.Errorf("HEAD %s: Content-Length %q, body %q; want %d and none", path,
				head.Header.Get("Content-Length"), hbody, n)
		}
	}
}

// TestLoopFileBody serves a photo from an os.File with http.ServeContent,
// whole and as a range (sendfile through the stall connection), to
// http.Client over one kept connection.
func TestLoopFileBody(t *testing.T) {
	name := filepath.Join("testdata", "photos", "flower-1920x1080.jpg")
	photo := readPhoto(t, "flower-1920x1080.jpg")
	ls := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(name)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "flower.jpg", time.Time{}, f)
	}), nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: loopHang}
	for _, tc := range []struct {
		rng    string
		status int
		want   []byte
	}{
		{"", 200, photo},
		{"bytes=100000-299999", 206, photo[100000:300000]},
		{"", 200, photo},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+ls.addr+"/flower.jpg", nil)
		if tc.rng != "" {
			req.Header.Set("Range", tc.rng)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		wantVia(t, resp, "loop")
		if resp.StatusCode != tc.status || !bytes.Equal(body, tc.want) {
			t.Errorf("GET Range %q = %d with %d bytes, want %d with %d identical bytes",
				tc.rng, resp.StatusCode, len(body), tc.status, len(tc.want))
		}
	}
}

// TestLoopUnknownLength: an answer without a Content-Length gets one from
// the loop when small and goes chunked when large, the bytes intact; the
// connection serves another request after each.
func TestLoopUnknownLength(t *testing.T) {
	ls := startLoop(t, http.HandlerFunc(sized), nil)
	for _, tc := range []struct {
		query   string
		n       int
		chunked bool
	}{
		{"n=0", 0, false},
		{"n=3000", 3000, false},
		{"n=65535", 65535, false},
		{"n=200000", 200000, true},
		{"n=200000&from=1", 200000, true},
		{"n=200000&from=1&declare=1", 200000, false},
	} {
		t.Run(tc.query, func(t *testing.T) {
			cl := dialLoop(t, ls.addr)
			cl.send("GET /sized?" + tc.query + "&seed=9 HTTP/1.1\r\nHost: t\r\n\r\n")
			resp, body := cl.read(http.MethodGet)
			wantVia(t, resp, "loop")
			chunked := slices.Equal(resp.TransferEncoding, []string{"chunked"})
			if chunked != tc.chunked {
				t.Errorf("Transfer-Encoding = %v, want chunked %v",
					resp.TransferEncoding, tc.chunked)
			}
			if !tc.chunked && resp.ContentLength != int64(tc.n) {
				t.Errorf("Content-Length = %d, want %d", resp.ContentLength, tc.n)
			}
			if body != string(bodyPattern(tc.n, 9)) {
				t.Errorf("body: %d bytes, want %d identical bytes", len(body), tc.n)
			}
			cl.send(echoGet)
			if _, body := cl.read(http.MethodGet); body != "" {
				t.Errorf("next answer body %q, want empty", body)
			}
		})
	}
}

// TestLoopShortBody: a handler that declares more than it writes leaves
// the client the declared head and a closed connection, never a reuse.
func TestLoopShortBody(t *testing.T) {
	ls := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "0123456789")
	}), nil)
	cl := dialLoop(t, ls.addr)
	cl.send(echoGet + echoGet) // a reused connection would answer the second
	resp, body, err := cl.readErr(http.MethodGet)
	if resp == nil {
		t.Fatalf("no answer: %v", err)
	}
	wantVia(t, resp, "loop")
	if resp.ContentLength != 100 || body != "0123456789" || err != io.ErrUnexpectedEOF {
		t.Errorf("answer: Content-Length %d, body %q, error %v; want 100, the 10 bytes and %v",
			resp.ContentLength, body, err, io.ErrUnexpectedEOF)
	}
}

// TestLoopLongBody: a write past the declared length fails with
// http.ErrContentLength and sends nothing; the connection stays usable.
func TestLoopLongBody(t *testing.T) {
	errc := make(chan error, 1)
	ls := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/long" {
			return
		}
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "01234")
		_, err := io.WriteString(w, "5")
		errc <- err
	}), nil)
	cl := dialLoop(t, ls.addr)
	cl.send("GET /long HTTP/1.1\r\nHost: t\r\n\r\n" + echoGet)
	resp, body := cl.read(http.MethodGet)
	wantVia(t, resp, "loop")
	if body != "01234" {
		t.Errorf("body = %q, want 01234", body)
	}
	if err := <-errc; err != http.ErrContentLength {
		t.Errorf("Write past Content-Length = %v, want %v", err, http.ErrContentLength)
	}
	if resp, body := cl.read(http.MethodGet); resp.StatusCode != 200 || body != "" {
		t.Errorf("next answer = %d %q, want 200 and empty", resp.StatusCode, body)
	}
}

// TestLoopReadFromBeyondDeclared: a file body longer than the declared
// Content-Length, given to ReadFrom, must not reach the next answer.
func TestLoopReadFromBeyondDeclared(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, []byte("0123456789abcdefghij"), 0o644); err != nil {
		t.Fatal(err)
	}
	ls := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(name)
		if err != nil {
			return
		}
		defer f.Close()
		w.Header().Set("Content-Length", "5")
		io.Copy(w, io.LimitReader(f, 20)) // the shape http.ServeContent gives ReadFrom
	}), nil)
	cl := dialLoop(t, ls.addr)
	cl.send(echoGet + echoGet)
	resp, body := cl.read(http.MethodGet)
	if body != "01234" {
		t.Errorf("body = %q, want 01234", body)
	}
	wantVia(t, resp, "loop")
	if resp, body, err := cl.readErr(http.MethodGet); err == nil && body != "01234" {
		t.Errorf("second answer = %d %q, want 01234 or a closed connection", resp.StatusCode, body)
	} else if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("second answer unreadable (%v): the first one's extra bytes came first", err)
	}
}

// TestLoopNoBody: 204 and 304 answers carry no body and refuse one with
// http.ErrBodyNotAllowed; the connection stays in step.
func TestLoopNoBody(t *testing.T) {
	errc := make(chan error, 1)
	ls := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		if code == 0 {
			return
		}
		if cl := r.URL.Query().Get("cl"); cl != "" {
			w.Header().Set("Content-Length", cl)
		}
		w.WriteHeader(code)
		_, err := io.WriteString(w, "body")
		errc <- err
	}), nil)
	for _, q := range []string{"code=204", "code=304", "code=304&cl=4"} {
		t.Run(q, func(t *testing.T) {
			cl := dialLoop(t, ls.addr)
			cl.send("GET /?" + q + " HTTP/1.1\r\nHost: t\r\n\r\n" + echoGet)
			resp, body := cl.read(http.MethodGet)
			wantVia(t, resp, "loop")
			if body != "" {
				t.Errorf("body = %q, want none", body)
			}
			if err := <-errc; err != http.ErrBodyNotAllowed {
				t.Errorf("Write = %v, want %v", err, http.ErrBodyNotAllowed)
			}
			if resp, body := cl.read(http.MethodGet); resp.StatusCode != 200 || body != "" {
				t.Errorf("next answer = %d %q, want 200 and empty", resp.StatusCode, body)
			}
		})
	}
}

// TestLoopClientGone: a client that leaves while its request runs cancels
// the request's context.
func TestLoopClientGone(t *testing.T) {
	started, cancelled := make(chan struct{}), make(chan bool, 1)
	ls := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			cancelled <- true
		case <-time.After(loopHang):
			cancelled <- false
		}
	}), nil)
	cl := dialLoop(t, ls.addr)
	cl.send(echoGet)
	<-started
	cl.c.Close()
	if !<-cancelled {
		t.Errorf("request context not cancelled within %v of the client leaving", loopHang)
	}
}

// TestLoopContextEndsWithHandler: as with net/http, a request's context
// ends when its handler returns, even if the connection stays.
func TestLoopContextEndsWithHandler(t *testing.T) {
	ended := make(chan bool, 1)
	ls := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		go func() {
			select {
			case <-ctx.Done():
				ended <- true
			case <-time.After(loopHang):
				ended <- false
			}
		}()
	}), nil)
	cl := dialLoop(t, ls.addr)
	cl.send(echoGet)
	cl.read(http.MethodGet)
	if !<-ended {
		t.Errorf("request context still live %v after its answer", loopHang)
	}
}

// TestLoopPipelinedDuringSlow: a request that arrives while the one
// before it runs, after the watcher has begun its one-byte read, is
// answered whole and in order, by the loop or, with the byte the watcher
// took, by net/http; the connection goes on serving.
func TestLoopPipelinedDuringSlow(t *testing.T) {
	for _, tc := range []struct {
		name, req, method, body, via string
	}{
		{"GET", echoGet, http.MethodGet, echoed, "loop"},
		{"POST", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi",
			http.MethodPost, "POST /echo t HTTP/1.1|hi", "net/http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started, release := make(chan struct{}, 1), make(chan struct{})
			ls := startLoop(t, slowHandler(started, release), nil)
			cl := dialLoop(t, ls.addr)
			cl.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
			<-started
			time.Sleep(3 * watchAfter) // the watcher's read starts after watchAfter
			cl.send(tc.req)
			time.Sleep(watchAfter) // lets that read take the request's first byte
			close(release)
			if resp, body := cl.read(http.MethodGet); body != "slow" {
				t.Fatalf("first answer = %d %q, want slow", resp.StatusCode, body)
			}
			resp, body := cl.read(tc.method)
			wantVia(t, resp, tc.via)
			if body != tc.body {
				t.Fatalf("answer after the slow one = %d %q, want %q",
					resp.StatusCode, body, tc.body)
			}
			cl.send(echoGet)
			if resp, body = cl.read(http.MethodGet); body != echoed {
				t.Errorf("third answer = %d %q, want the echo", resp.StatusCode, body)
			}
		})
	}
}

// TestLoopHeadInPieces: heads that come in several reads, the second
// split right after its first byte, are read whole.
func TestLoopHeadInPieces(t *testing.T) {
	ls := startLoop(t, http.HandlerFunc(echo), nil)
	cl := dialLoop(t, ls.addr)
	for _, pieces := range [][]string{
		{"GET /ec", "ho HTTP/1.1\r\nHo", "st: t\r\n\r", "\n"},
		{"G", "ET /echo HTTP/1.1\r\nHost: t\r\n\r\n"},
	} {
		for _, p := range pieces {
			cl.send(p)
			time.Sleep(5 * time.Millisecond) // makes each piece a read of its own
		}
		resp, body := cl.read(http.MethodGet)
		wantVia(t, resp, "loop")
		if body != echoed {
			t.Errorf("answer to %q = %d %q, want the echo", pieces, resp.StatusCode, body)
		}
	}
}

// slowHandler blocks /slow until release is closed; started gets a value
// when it begins.
func slowHandler(started chan<- struct{}, release <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			echo(w, r)
			return
		}
		started <- struct{}{}
		select {
		case <-release:
			io.WriteString(w, "slow")
		case <-r.Context().Done():
		}
	})
}

// TestLoopShutdown: idle connections close at once, of the loop and of
// net/http; the request in flight gets its answer; Shutdown returns nil
// after it; the port refuses new connections.
func TestLoopShutdown(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	ls := startLoop(t, slowHandler(started, release), nil)
	idle, handed, busy := dialLoop(t, ls.addr), dialLoop(t, ls.addr), dialLoop(t, ls.addr)
	idle.send(echoGet)
	idle.read(http.MethodGet)
	handed.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx")
	handed.read(http.MethodPost)
	busy.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), loopHang)
	defer cancel()
	loopDone, srvDone := make(chan error, 1), make(chan error, 1)
	go func() { loopDone <- ls.loop.Shutdown(ctx) }()
	go func() { srvDone <- ls.srv.Shutdown(ctx) }()
	idle.wantClosed()
	handed.wantClosed()
	select {
	case err := <-loopDone:
		t.Fatalf("Shutdown = %v with a request in flight, want it to wait", err)
	default:
	}

	close(release)
	resp, body := busy.read(http.MethodGet)
	if body != "slow" || !resp.Close {
		t.Errorf("answer in flight = %q, Close %v; want slow and Connection: close",
			body, resp.Close)
	}
	busy.wantClosed()
	if err := <-loopDone; err != nil {
		t.Errorf("loop Shutdown = %v, want nil", err)
	}
	if err := <-srvDone; err != nil {
		t.Errorf("http.Server Shutdown = %v, want nil", err)
	}
	if c, err := net.Dial("tcp", ls.addr); err == nil {
		c.Close()
		t.Errorf("dial after Shutdown succeeded, want it refused")
	}
}

// TestLoopShutdownExpired: with its context over, Shutdown closes the
// connection of the request in flight and returns the context's error.
func TestLoopShutdownExpired(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	ls := startLoop(t, slowHandler(started, release), nil)
	busy := dialLoop(t, ls.addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
	<-started
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if err := ls.loop.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Errorf("Shutdown = %v, want %v", err, context.DeadlineExceeded)
	}
	busy.wantClosed()
}

// TestLoopTimeouts: a head that stops half way and a kept connection left
// idle are closed by the server.
func TestLoopTimeouts(t *testing.T) {
	const short, long = 200 * time.Millisecond, 4 * loopHang
	for _, tc := range []struct {
		name             string
		header, idle     time.Duration
		first, afterward string // afterward is sent once first is answered
	}{
		{"nothing sent", short, long, "", ""},
		{"half a head", short, long, "GET /echo HTTP/1.1\r\nHo", ""},
		{"half a second head", short, long, echoGet, "GET /echo HT"},
		{"idle", long, short, echoGet, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ls := startLoop(t, http.HandlerFunc(echo), func(s *http.Server) {
				s.ReadHeaderTimeout, s.IdleTimeout = tc.header, tc.idle
			})
			cl := dialLoop(t, ls.addr)
			if tc.first != "" {
				cl.send(tc.first)
			}
			if tc.first == echoGet {
				cl.read(http.MethodGet)
				if tc.afterward != "" {
					cl.send(tc.afterward)
				}
			}
			cl.wantClosed()
		})
	}
}

// TestLoopPanic: a panicking handler closes its connection and is logged
// to ErrorLog, except http.ErrAbortHandler; other connections go on.
func TestLoopPanic(t *testing.T) {
	ls := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom in the handler")
		case "/abort":
			panic(http.ErrAbortHandler)
		}
		echo(w, r)
	}), nil)
	other := dialLoop(t, ls.addr)
	other.send(echoGet)
	other.read(http.MethodGet)

	for _, p := range []string{"/panic", "/abort"} {
		cl := dialLoop(t, ls.addr)
		cl.send("GET " + p + " HTTP/1.1\r\nHost: t\r\n\r\n")
		cl.wantClosed()
	}
	logged := ls.log.String()
	if !strings.Contains(logged, "panic") || !strings.Contains(logged, "boom in the handler") {
		t.Errorf("ErrorLog = %q, want the panic", logged)
	}
	if strings.Contains(logged, http.ErrAbortHandler.Error()) {
		t.Errorf("ErrorLog = %q, want no line for http.ErrAbortHandler", logged)
	}
	other.send(echoGet)
	if resp, body := other.read(http.MethodGet); body != echoed {
		t.Errorf("other connection after the panics = %d %q, want the echo", resp.StatusCode, body)
	}
	fresh := dialLoop(t, ls.addr)
	fresh.send(echoGet)
	fresh.read(http.MethodGet)
}

// TestLoopDate: every answer has a parseable Date near now; a handler's
// own Date is kept and not doubled.
func TestLoopDate(t *testing.T) {
	const fixed = "Wed, 21 Oct 2015 07:28:00 GMT"
	ls := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/dated" {
			w.Header().Set("Date", fixed)
		}
	}), nil)
	cl := dialLoop(t, ls.addr)
	cl.send(echoGet + "GET /dated HTTP/1.1\r\nHost: t\r\n\r\n")
	resp, _ := cl.read(http.MethodGet)
	d, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil || d.Sub(time.Now()).Abs() > time.Hour {
		t.Errorf("Date = %q (%v), want an HTTP date of now", resp.Header.Get("Date"), err)
	}
	resp, _ = cl.read(http.MethodGet)
	if got := resp.Header.Values("Date"); len(got) != 1 || got[0] != fixed {
		t.Errorf("Date = %q, want only the handler's %q", got, fixed)
	}
}

// injecting sets response fields that would split the head if written raw.
func injecting(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	switch r.URL.Path {
	case "/value":
		h.Set("X-Split", "a\r\nSet-Cookie: evil=1")
		h.Set("X-Lf", "b\nX-Injected: 1")
	case "/key":
		h["X-Key: 1\r\nSet-Cookie"] = []string{"evil=1"}
	}
	io.WriteString(w, "ok")
}

// TestLoopHeaderInjection: line breaks in a handler's field values become
// spaces; no field of the handler's can add another.
func TestLoopHeaderInjection(t *testing.T) {
	ls := startLoop(t, http.HandlerFunc(injecting), nil)
	cl := dialLoop(t, ls.addr)
	cl.send("GET /value HTTP/1.1\r\nHost: t\r\n\r\n" + echoGet)
	resp, body := cl.read(http.MethodGet)
	wantVia(t, resp, "loop")
	if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("X-Injected") != "" {
		t.Errorf("header = %v, want no Set-Cookie or X-Injected", resp.Header)
	}
	if got := resp.Header.Get("X-Split"); got != "a  Set-Cookie: evil=1" {
		t.Errorf("X-Split = %q, want the line break as spaces", got)
	}
	if body != "ok" {
		t.Errorf("body = %q, want ok", body)
	}
	if _, body := cl.read(http.MethodGet); body != "ok" {
		t.Errorf("next answer body = %q, want ok", body)
	}
}

// TestLoopHeaderKeyInjection: a field name with a line break, which
// net/http drops, must not become a field of its own.
func TestLoopHeaderKeyInjection(t *testing.T) {
	ref := httptest.NewServer(http.HandlerFunc(injecting))
	defer ref.Close()
	resp, err := http.Get(ref.URL + "/key")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Set-Cookie") != "" {
		t.Fatalf("net/http sent Set-Cookie %q; the reference is wrong",
			resp.Header.Get("Set-Cookie"))
	}

	ls := startLoop(t, http.HandlerFunc(injecting), nil)
	cl := dialLoop(t, ls.addr)
	cl.send("GET /key HTTP/1.1\r\nHost: t\r\n\r\n")
	resp, _ = cl.read(http.MethodGet)
	if got := resp.Header.Get("Set-Cookie"); got != "" {
		t.Errorf("Set-Cookie = %q from a field name, want none", got)
	}
}

// TestLoopHandedConnCloseWrite: the connection net/http gets from the loop
// can still be half-closed, as stallConn provides for net/http's error
// answers: the body of a 431, which runs to the end of the connection,
// then ends cleanly at once instead of in a reset half a second later.
func TestLoopHandedConnCloseWrite(t *testing.T) {
	conns := make(chan net.Conn, 1)
	ls := startLoop(t, http.HandlerFunc(echo), func(s *http.Server) {
		s.ConnState = func(c net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns <- c
			}
		}
	})
	cl := dialLoop(t, ls.addr)
	cl.send(paddedHead(80 << 10))
	if c := <-conns; c != nil {
		if _, ok := c.(interface{ CloseWrite() error }); !ok {
			t.Errorf("net/http got a %T, which has no CloseWrite", c)
		}
	}
	resp, body, err := cl.readErr(http.MethodGet)
	if err != nil {
		t.Fatalf("answer to an 80 KiB head: body %q, then %v; want a clean end", body, err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("answer to an 80 KiB head = %d, want 431", resp.StatusCode)
	}
}

// TestLoopDuplicateContentLength: the loop must hand a request with two
// Content-Length fields to net/http, or keep one as net/http does.
func TestLoopDuplicateContentLength(t *testing.T) {
	const head = "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"
	r, _ := loopParse([]byte(head))
	if r != nil && len(r.Header["Content-Length"]) != 1 {
		t.Errorf("loop Content-Length = %q, want one value or a handoff",
			r.Header["Content-Length"])
	}
}

// FuzzLoopHead holds the loop's head parser to net/http: whatever head
// the loop takes for itself, http.ReadRequest reads alike and net/http's
// server answers instead of refusing.
func FuzzLoopHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
		"HEAD /a/b.jpg?x=1&y=%20 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nUser-Agent: x\r\n\r\n",
		"GET /p.jpg/resize-300x-q80.jpeg HTTP/1.1\r\nHost: [::1]:80\r\nAccept: */*\r\n" +
			"Accept-Encoding: gzip\r\nConnection: keep-alive\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nX-A:  a b\t\r\nx-a: c\r\nCOOKIE: k=v\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nPragma: no-cache\r\nIf-None-Match: \"e\"\r\n\r\n",
		"GET /%zz HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET //x/../y HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nX: \x80\xff\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
		"GET http://t/ HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET / HTTP/1.1\nHost: t\n\n",
		"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\n",
		"GET /a;b,c?x=%zz HTTP/1.1\r\nHost:t\r\nX:\r\nX-Y_z: \t1\t\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: a_b:\r\nConnection: keep-alive, Close\r\nPragma: no\r\n\r\n",
		"HEAD /a HTTP/1.1\r\nhost: x\r\nX: a\tb\r\nCookie: a\r\nCookie: b\r\n\r\nGET",
		"GET /a HTTP/1.1\r\nHost: [::1]:8\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET //y/a?#x HTTP/1.1\r\nHost:\t[::1\t\r\nConnection: keep-alive, Close\r\n\r\n",
		"HEAD /%41 HTTP/1.1\r\nHOST: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\nX_Y: v\r\nx-y: w\r\nExpect: \r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\n\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	ref := newPipeServer(f)
	f.Fuzz(func(t *testing.T, in []byte) { diffHead(t, ref, in) })
}

// diffHead fails unless a head the loop takes from in is read alike by
// http.ReadRequest and answered by net/http's server as the loop reads it.
// It reports whether the loop took a head.
func diffHead(t *testing.T, ref *pipeServer, in []byte) bool {
	t.Helper()
	got, n := loopParse(in)
	if got == nil {
		return false // net/http's to judge
	}
	head := in[:n]
	// Read from all of in, net/http must end the head where the loop does
	// and see no body: else the two would part on the next request.
	br := bufio.NewReader(bytes.NewReader(in))
	want, err := http.ReadRequest(br)
	if err != nil {
		t.Fatalf("loop took %q; http.ReadRequest: %v", head, err)
	}
	if read := len(in) - br.Buffered(); read != n || want.ContentLength != 0 ||
		len(want.TransferEncoding) > 0 {
		t.Fatalf("%q: net/http reads a head of %d bytes and a body of %d %v; the loop %d and none",
			head, read, want.ContentLength, want.TransferEncoding, n)
	}
	delete(want.Header, "Host") // net/http's server keeps it in Host only
	compareRequests(t, head, seenOf(got), seenOf(want))
	compareRequests(t, head, seenOf(got), ref.see(t, head))
	return true
}

// TestLoopHeadMatrix runs diffHead over every combination of request
// targets, Host values and one more field line, the near misses included:
// a denser search of what the loop takes than the fuzzer's.
func TestLoopHeadMatrix(t *testing.T) {
	targets := []string{"/", "/a/b.jpg", "/a?x=1&y=%20", "/?", "/%41%2f%zz", "/a;b,c", "//x/../y",
		"/~!$&'()*+,;=:@", "/%zz", "/a?%zz", "/a b", "/\x7f", "/\xc3\xa9", "/a#f", "*",
		"http://h/x", "", "/a\tb"}
	hosts := []string{"Host: t", "host:t", "HOST: [::1]:80", "Host: ", "Host: t u", "Host: %zz",
		"Host: a_b", "Host: t:", "Host: \xc3\xa9", "Host: t\t", "Host : t", ""}
	extras := []string{"", "X: a", "x-y: \tb\t", "ACCEPT: */*", "X:", "X: \x80\xff",
		"X: a\x00b", "X: a\x7fb", "X: a\rb", "X : a", " X: a", "X\t: a", "X-\xc3\x84: a",
		": a", "X", "Connection: close", "Connection: keep-alive, Close", "Connection: upgrade",
		"Content-Length: 0", "Content-Length: 00", "Content-Length: 1", "Content-Length: +0",
		"Transfer-Encoding: identity", "Expect: 100-continue", "Upgrade: h2c", "Pragma: no-cache",
		"Host: u", "Host: t", "Cookie: a=b; c=d", "X: a\r\n b", "X: \"q\"", "X_Y: 1"}
	ref := newPipeServer(t)
	took := 0
	for _, target := range targets {
		for _, method := range []string{"GET", "HEAD"} {
			for _, host := range hosts {
				for _, extra := range extras {
					head := method + " " + target + " HTTP/1.1\r\n"
					for _, line := range []string{host, extra} {
						if line != "" {
							head += line + "\r\n"
						}
					}
					if diffHead(t, ref, []byte(head+"\r\n")) {
						took++
					}
				}
			}
		}
	}
	if took == 0 {
		t.Fatalf("the loop took none of the heads")
	}
	t.Logf("the loop took %d heads of %d", took, len(targets)*2*len(hosts)*len(extras))
}

// loopParse runs the loop's head reading over in, as serve does, and
// returns the request it would serve itself (nil if none) and the head's
// length.
func loopParse(in []byte) (*http.Request, int) {
	l := &httpLoop{conns: map[*loopConn]struct{}{}, gone: make(chan struct{}, 1)}
	lc := newLoopConn(l, &memConn{r: bytes.NewReader(in)})
	defer lc.cancel()
	r, n, err := lc.readHead()
	if err != nil {
		return nil, 0
	}
	return r, n
}

// memConn is a connection that reads r and takes no writes.
type memConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *memConn) Read(p []byte) (int, error)      { return c.r.Read(p) }
func (c *memConn) SetReadDeadline(time.Time) error { return nil }
func (c *memConn) RemoteAddr() net.Addr            { return loopbackAddr }

var loopbackAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}

// seenRequest is what a handler sees of a request, for comparison.
type seenRequest struct {
	Method, RequestURI, Path, RawQuery, Host string
	Close                                    bool
	Header                                   http.Header
}

func seenOf(r *http.Request) seenRequest {
	return seenRequest{Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.Path,
		RawQuery: r.URL.RawQuery, Host: r.Host, Close: r.Close, Header: r.Header}
}

// compareRequests fails unless net/http's reading of head matches the
// loop's. net/http adds Cache-Control: no-cache for Pragma: no-cache, which
// Katana derives itself (requestDirectives): that field alone may differ.
func compareRequests(t *testing.T, head []byte, loop, ref seenRequest) {
	t.Helper()
	h := ref.Header.Clone()
	if _, ok := loop.Header["Cache-Control"]; !ok && loop.Header.Get("Pragma") == "no-cache" {
		delete(h, "Cache-Control")
	}
	lh := loop.Header.Clone()
	loop.Header, ref.Header = nil, nil
	if !reflect.DeepEqual(loop, ref) {
		t.Fatalf("head %q: loop reads %+v, net/http %+v", head, loop, ref)
	}
	if len(lh)+len(h) > 0 && !reflect.DeepEqual(lh, h) {
		t.Fatalf("head %q: loop header %q, net/http %q", head, lh, h)
	}
}

// pipeServer is net/http's server over in-memory connections; its handler
// passes on what it saw of each request.
type pipeServer struct {
	conns chan net.Conn
	seen  chan seenRequest
	done  chan struct{}
}

func newPipeServer(tb testing.TB) *pipeServer {
	ps := &pipeServer{conns: make(chan net.Conn), seen: make(chan seenRequest, 1),
		done: make(chan struct{})}
	srv := &http.Server{MaxHeaderBytes: 64 << 10, ErrorLog: log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ps.seen <- seenOf(r)
		})}
	go srv.Serve(ps)
	tb.Cleanup(func() { srv.Close() })
	return ps
}

func (ps *pipeServer) Accept() (net.Conn, error) {
	select {
	case c := <-ps.conns:
		return c, nil
	case <-ps.done:
		return nil, net.ErrClosed
	}
}

func (ps *pipeServer) Close() error {
	select {
	case <-ps.done:
	default:
		close(ps.done)
	}
	return nil
}

func (ps *pipeServer) Addr() net.Addr { return loopbackAddr }

// see sends head to the server and returns what its handler saw; it fails
// when the server refuses the request.
func (ps *pipeServer) see(t *testing.T, head []byte) seenRequest {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	client.SetDeadline(time.Now().Add(loopHang))
	ps.conns <- server
	go client.Write(head)
	resp, err := http.ReadResponse(bufio.NewReader(client), nil)
	if err != nil {
		t.Fatalf("head %q: net/http's answer: %v", head, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("loop took %q; net/http answers %d", head, resp.StatusCode)
	}
	seen := <-ps.seen
	if seen.Header == nil {
		seen.Header = http.Header{}
	}
	return seen
}
