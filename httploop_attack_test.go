// httploop_attack_test.go replays what hostile clients send to the HTTP/1.1
// loop, through a real loop on 127.0.0.1, and checks it against net/http.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// attackServer serves h on 127.0.0.1, through the loop in front of net/http
// when loop is set, else through net/http alone. wrap, when not nil, wraps
// the listener under both. It returns the address and the loop (nil without).
func attackServer(t *testing.T, h http.Handler, loop bool,
	wrap func(net.Listener) net.Listener) (string, *httpLoop) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes: 64 << 10}
	var l *httpLoop
	served := ln
	if loop {
		l = newHTTPLoop(ln, h, srv)
		served = l.Listener()
		t.Cleanup(func() { l.Close() })
	}
	go srv.Serve(served)
	t.Cleanup(func() { srv.Close() })
	return addr, l
}

// attackEcho answers with what it understood of the request, so that two
// servers that parse a head differently answer differently.
func attackEcho(w http.ResponseWriter, r *http.Request) {
	var fields []string
	for k, vs := range r.Header {
		if k != "Content-Length" { // net/http folds equal duplicates, the loop does not
			fields = append(fields, fmt.Sprintf("%s=%q", k, vs))
		}
	}
	sort.Strings(fields)
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %q host=%q close=%v te=%v body=%q %s", r.Method, r.RequestURI,
		r.Host, r.Close, r.TransferEncoding, body, strings.Join(fields, " "))
}

// sendChunks writes the chunks to addr, then half-closes and returns what
// came back until the server closed or two seconds passed.
func sendChunks(t *testing.T, addr string, chunks ...string) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, ch := range chunks {
		if _, err := io.WriteString(c, ch); err != nil {
			break // the server may close early after a bad head
		}
	}
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(c)
	return b
}

// answers parses the answers in b into one line each: status, Connection
// close, the header but Date and framing, and the body; a trailing line
// says what could not be parsed.
func answers(b []byte) []string {
	var out []string
	br := bufio.NewReader(bytes.NewReader(b))
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if rest, _ := io.ReadAll(br); len(rest) > 0 || err != io.EOF {
				out = append(out, fmt.Sprintf("unparsed %v: %q", err, rest))
			}
			return out
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			body = append(body, "<cut>"...)
		}
		var fields []string
		for k, v := range resp.Header {
			if k != "Date" && k != "Content-Length" {
				fields = append(fields, k+"="+strings.Join(v, "|"))
			}
		}
		sort.Strings(fields)
		out = append(out, fmt.Sprintf("%d close=%v [%s] %q", resp.StatusCode, resp.Close,
			strings.Join(fields, " "), body))
	}
}

// TestAttackHeadsAnsweredAsNetHTTP sends heads built to make the loop and
// net/http disagree (smuggling, desync, odd bytes) and checks that the loop
// answers each as net/http alone does: same answers, same count, same order.
func TestAttackHeadsAnsweredAsNetHTTP(t *testing.T) {
	h := http.HandlerFunc(attackEcho)
	loopAddr, _ := attackServer(t, h, true, nil)
	plainAddr, _ := attackServer(t, h, false, nil)
	const get = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	long := func(n int) string {
		return "GET /a HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", n) + "\r\n\r\n"
	}
	tests := []struct {
		name   string
		chunks []string
	}{
		{"plain", []string{get}},
		{"duplicate Content-Length 0", []string{"GET /a HTTP/1.1\r\nHost: x\r\n" +
			"Content-Length: 0\r\nContent-Length: 0\r\n\r\n" + get}},
		{"Content-Length 0 and 5", []string{"GET /a HTTP/1.1\r\nHost: x\r\n" +
			"Content-Length: 0\r\nContent-Length: 5\r\n\r\nhello" + get}},
		{"Content-Length 0 plus chunked", []string{"GET /a HTTP/1.1\r\nHost: x\r\n" +
			"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5\r\nhello\r\n0\r\n\r\n" + get}},
		{"lower-case chunked", []string{"GET /a HTTP/1.1\r\nHost: x\r\n" +
			"transfer-encoding: chunked\r\n\r\n0\r\n\r\n" + get}},
		{"Content-Length with body", []string{"GET /a HTTP/1.1\r\nHost: x\r\n" +
			"Content-Length: 5\r\n\r\nGET /" + get}},
		{"Content-Length +0", []string{"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n"}},
		{"Content-Length 0,0", []string{"GET /a HTTP/1.1\r\nHost: x\r\n" +
			"Content-Length: 0,0\r\n\r\n"}},
		{"Transfer-Encoding identity", []string{"GET /a HTTP/1.1\r\nHost: x\r\n" +
			"Transfer-Encoding: identity\r\n\r\n" + get}},
		{"space before colon", []string{"GET /a HTTP/1.1\r\nHost: x\r\n" +
			"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"}},
		{"tab before colon", []string{"GET /a HTTP/1.1\r\nHost: x\r\nX-A\t: v\r\n\r\n"}},
		{"obs-fold", []string{"GET /a HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n" + get}},
		{"obs-fold hides Transfer-Encoding", []string{"GET /a HTTP/1.1\r\nHost: x\r\n" +
			"X: a\r\n Transfer-Encoding: chunked\r\n\r\n" + get}},
		{"NUL in value", []string{"GET /a HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n"}},
		{"CR alone in value", []string{"GET /a HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n"}},
		{"DEL in value", []string{"GET /a HTTP/1.1\r\nHost: x\r\nX: a\x7fb\r\n\r\n"}},
		{"obs-text in value", []string{"GET /a HTTP/1.1\r\nHost: x\r\nX: \xff\xfe\r\n\r\n"}},
		{"bare LF ends the head", []string{"GET /a HTTP/1.1\r\nHost: x\n\n" + get}},
		{"bare LF everywhere", []string{"GET /a HTTP/1.1\nHost: x\n\n" + get}},
		{"CRLF LF ends the head", []string{"GET /a HTTP/1.1\r\nHost: x\r\n\n" + get}},
		{"empty line before Host", []string{"GET /a HTTP/1.1\r\n\r\nHost: x\r\n\r\n"}},
		{"leading CRLF", []string{"\r\n" + get}},
		{"no Host", []string{"GET /a HTTP/1.1\r\n\r\n"}},
		{"two Hosts", []string{"GET /a HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n"}},
		{"empty Host", []string{"GET /a HTTP/1.1\r\nHost:\r\n\r\n"}},
		{"Host with space", []string{"GET /a HTTP/1.1\r\nHost: a b\r\n\r\n"}},
		{"Host with slash", []string{"GET /a HTTP/1.1\r\nHost: x/y\r\n\r\n"}},
		{"Host with at", []string{"GET /a HTTP/1.1\r\nHost: u@x\r\n\r\n"}},
		{"Host with UTF-8", []string{"GET /a HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n"}},
		{"Host with percent", []string{"GET /a HTTP/1.1\r\nHost: a%00b\r\n\r\n"}},
		{"absolute form", []string{"GET http://y/a HTTP/1.1\r\nHost: x\r\n\r\n"}},
		{"double slash target", []string{"GET //y/a HTTP/1.1\r\nHost: x\r\n\r\n"}},
		{"bad escape in target", []string{"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n"}},
		{"tab in target", []string{"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n"}},
		{"space in target", []string{"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"}},
		{"two spaces", []string{"GET  /a HTTP/1.1\r\nHost: x\r\n\r\n"}},
		{"fragment", []string{"GET /a#f HTTP/1.1\r\nHost: x\r\n\r\n"}},
		{"lower-case method", []string{"get /a HTTP/1.1\r\nHost: x\r\n\r\n"}},
		{"HTTP/1.0", []string{"GET /a HTTP/1.0\r\nHost: x\r\n\r\n" + get}},
		{"HTTP/1.2", []string{"GET /a HTTP/1.2\r\nHost: x\r\n\r\n"}},
		{"trailing space", []string{"GET /a HTTP/1.1 \r\nHost: x\r\n\r\n"}},
		{"Expect", []string{"GET /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n"}},
		{"Upgrade", []string{"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n" +
			"Upgrade: h2c\r\n\r\n"}},
		{"Connection close mid-pipeline", []string{"GET /a HTTP/1.1\r\nHost: x\r\n" +
			"Connection: keep-alive, Close\r\n\r\n" + get}},
		{"pipeline into a POST", []string{get + "POST /p HTTP/1.1\r\nHost: x\r\n" +
			"Content-Length: 5\r\n\r\nhello" + get}},
		{"pipeline into chunked", []string{get + "GET /c HTTP/1.1\r\nHost: x\r\n" +
			"Transfer-Encoding: chunked\r\n\r\n3\r\nGET\r\n0\r\n\r\n" + get}},
		{"head of 7000 bytes", []string{long(7000), get}},
		{"head across the 8 KiB buffer", []string{get + long(8100) + get}},
		{"head of 70000 bytes", []string{long(70000)}},
		{"byte by byte", strings.Split(get+get, "")},
		{"split at CR LF", []string{"GET /a HTTP/1.1\r", "\nHost: x\r", "\n\r", "\n"}},
		{"PRI preface", []string{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := answers(sendChunks(t, loopAddr, tt.chunks...))
			want := answers(sendChunks(t, plainAddr, tt.chunks...))
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("loop answers\n%s\nwant (net/http)\n%s",
					strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestAttackIdleConnKeepsAnswerBuffer keeps a connection open after one
// answer that went through the writer's ReadFrom (http.ServeContent of bytes
// in memory, as Katana's hot files and Range requests are served). An idle
// connection should hold about what net/http's does (a few KiB), not the
// size of its last answer.
func TestAttackIdleConnKeepsAnswerBuffer(t *testing.T) {
	body := bytes.Repeat([]byte("katana "), 60<<10/7)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
	addr, loop := attackServer(t, h, true, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, rng := range []string{"", "Range: bytes=0-\r\n"} {
		fmt.Fprintf(c, "GET /p.jpg HTTP/1.1\r\nHost: x\r\n%s\r\n", rng)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(resp.Body); len(got) != len(body) {
			t.Fatalf("body of %q: %d bytes, want %d", rng, len(got), len(body))
		}
		held := idleHeld(t, loop)
		if held > 16<<10 {
			t.Errorf("idle connection after %q holds %d bytes of answer buffers, want <= %d",
				rng, held, 16<<10)
		}
	}
}

// idleHeld waits until the loop's one connection is idle and returns the
// capacity of its answer buffers.
func idleHeld(t *testing.T, l *httpLoop) int {
	t.Helper()
	for range 1000 {
		l.mu.Lock()
		for lc := range l.conns {
			if lc.idle.Load() { // after the answer read: idle again, buffers released
				n := cap(lc.w.out) + cap(lc.w.body)
				l.mu.Unlock()
				return n
			}
		}
		l.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no connection became idle")
	return 0
}

// TestAttackPipelinedClientGone sends a slow request with the next one right
// behind it and goes away while the first runs. net/http cancels the first
// request's context; the loop must too, or an image is made for nobody, and
// a shutdown whose grace ran out cannot stop it either.
func TestAttackPipelinedClientGone(t *testing.T) {
	for _, loop := range []bool{false, true} {
		name := map[bool]string{false: "net/http", true: "loop"}[loop]
		t.Run(name, func(t *testing.T) {
			if loop {
			}
			started, cancelled := make(chan struct{}, 1), make(chan bool, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/slow" {
					return
				}
				started <- struct{}{}
				select {
				case <-r.Context().Done():
					cancelled <- true
				case <-time.After(10 * time.Second):
					cancelled <- false
				}
			})
			addr, _ := attackServer(t, h, loop, nil)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"+
				"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
			<-started
			c.Close()
			if !<-cancelled {
				t.Error("the client went away; the request's context was not cancelled")
			}
		})
	}
}

// closeWriteConn records whether net/http half-closed it.
type closeWriteConn struct {
	net.Conn
	closedWrite *atomic.Bool
}

func (c closeWriteConn) CloseWrite() error {
	c.closedWrite.Store(true)
	return c.Conn.(*net.TCPConn).CloseWrite()
}

type closeWriteListener struct {
	net.Listener
	closedWrite *atomic.Bool
}

func (l closeWriteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return closeWriteConn{c, l.closedWrite}, nil
}

// TestAttackHandoffKeepsCloseWrite sends a head too large for net/http
// (431) through the loop, which hands it over. net/http half-closes the
// connection before it waits and closes, so the client sees the end of the
// answer at once (stallConn.CloseWrite exists for this); the connection
// the loop hands over must still let it.
func TestAttackHandoffKeepsCloseWrite(t *testing.T) {
	for _, loop := range []bool{false, true} {
		name := map[bool]string{false: "net/http", true: "loop"}[loop]
		t.Run(name, func(t *testing.T) {
			if loop {
			}
			var closedWrite atomic.Bool
			addr, _ := attackServer(t, http.HandlerFunc(attackEcho), loop,
				func(ln net.Listener) net.Listener { return closeWriteListener{ln, &closedWrite} })
			got := sendChunks(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\nX: "+
				strings.Repeat("a", 80<<10)+"\r\n\r\n")
			if !bytes.HasPrefix(got, []byte("HTTP/1.1 431 ")) {
				t.Fatalf("answer to an 80 KiB head = %.40q, want 431", got)
			}
			if !closedWrite.Load() {
				t.Error("net/http did not half-close the connection after its 431")
			}
		})
	}
}

// TestAttackShortBodyHoldsConnection sends a POST whose body never comes in
// full to Katana's public server (the loop and net/http with the timeouts
// of lifecycle.go). read_header_timeout and idle_timeout stop a client that
// sends a head slowly or nothing; one that sends a head and three bytes of
// its body should be stopped too, not hold a connection and a goroutine for
// as long as it likes.
func TestAttackShortBodyHoldsConnection(t *testing.T) {
	cfg := Config{ReadHeaderTimeout: Duration{Duration: 200 * time.Millisecond},
		IdleTimeout:  Duration{Duration: 300 * time.Millisecond},
		WriteTimeout: Duration{Duration: time.Second}}
	srv := (&daemon{}).httpServer(&cfg)
	srv.ErrorLog = nil // the daemon has no generation to log to
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusMethodNotAllowed) // what Katana answers a POST
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	loop := newHTTPLoop(stallListener(ln, cfg.WriteTimeout.Duration), srv.Handler, srv)
	go srv.Serve(loop.Listener())
	t.Cleanup(func() { loop.Close(); srv.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /p.jpg HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
	// Ten times read_header_timeout and idle_timeout together.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("the connection of a POST with a short body is still open after 5 s")
	}
}
