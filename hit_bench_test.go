package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// hitBenchKatana returns a Katana whose origin has /p.jpg, a 640x480 JPEG
// fresh for an hour; done closes both.
func hitBenchKatana(b *testing.B) (k *testKatana, done func()) {
	t := &testing.T{}
	o := newTestOrigin(t)
	o.put("/p.jpg", testJPEG(t, 640, 480), "Cache-Control", "max-age=3600")
	k = newKatanaTOML(t, defaultConfigTOML, func(c *Config) {
		c.CacheDir = b.TempDir()
		c.Origins["default"] = map[string]*ClusterConfig{"t": {IPs: []string{o.node()}}}
	})
	return k, func() { k.Close(); o.Close() }
}

// BenchmarkHandlerHit measures the handler alone serving cache hits: a
// source and a variant, with the access log discarded.
func BenchmarkHandlerHit(b *testing.B) {
	k, done := hitBenchKatana(b)
	defer done()
	for _, p := range []string{"/p.jpg", "/p.jpg/resize-300x-q80.jpeg"} {
		b.Run(p, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, p, nil)
			k.s.ServeHTTP(httptest.NewRecorder(), req)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				w := httptest.NewRecorder()
				k.s.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}

// BenchmarkLoopHit measures a variant hit through the HTTP/1.1 loop and the
// handler, over a connection that costs nothing: what is left is Katana's
// own work per request, without the system calls.
func BenchmarkLoopHit(b *testing.B) {
	k, done := hitBenchKatana(b)
	defer done()
	path := "/p.jpg/resize-300x-q80.jpeg"
	k.s.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	req := "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
	c := &benchConn{req: []byte(req)}
	l := &httpLoop{h: k.s, conns: map[*loopConn]struct{}{}, gone: make(chan struct{}, 1)}
	lc := newLoopConn(l, c)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r, n, err := lc.readHead()
		if err != nil {
			b.Fatal(err)
		}
		lc.br.Discard(n)
		if !lc.answer(r) || lc.w.status != http.StatusOK {
			b.Fatalf("status %d", lc.w.status)
		}
	}
}

// benchConn is a connection that reads the same request forever and
// discards what is written.
type benchConn struct {
	net.Conn
	req []byte
	off int
}

func (c *benchConn) Read(p []byte) (int, error) {
	n := copy(p, c.req[c.off:])
	c.off = (c.off + n) % len(c.req)
	return n, nil
}

func (c *benchConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *benchConn) SetReadDeadline(time.Time) error  { return nil }
func (c *benchConn) SetWriteDeadline(time.Time) error { return nil }
func (c *benchConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
