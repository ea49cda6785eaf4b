// guard_test.go drives the handler with hostile input: non-image origin bodies,
// pipeline panics, clients that leave, malformed paths and echoed input.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/color"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNonImageOriginBodyRefused(t *testing.T) {
	o := newTestOrigin(t)
	html := []byte("<html><script>alert(1)</script></html>")
	o.put("/stored.jpg", html, "Content-Type", "image/jpeg", "Cache-Control", "max-age=60")
	o.put("/nostore.jpg", html, "Content-Type", "image/jpeg", "Cache-Control", "no-store")
	k := newKatana(t, o, nil)
	for _, p := range []string{"/stored.jpg", "/nostore.jpg", "/stored.jpg/resize-10x.png",
		"/nostore.jpg/resize-10x.webp"} {
		t.Run(p, func(t *testing.T) {
			resp, body := k.get(t, p)
			wantStatus(t, resp, body, http.StatusUnsupportedMediaType)
			if bytes.Contains(body, []byte("script")) {
				t.Errorf("body %q carries the origin's bytes", body)
			}
		})
	}
	if files := cacheFiles(t, k.dir); len(files) != 0 {
		t.Errorf("cache holds %v after non-image bodies, want nothing", files)
	}

	// Once the origin serves an image the same URL works: nothing bad was kept.
	o.put("/stored.jpg", testJPEG(t, 40, 20))
	resp, body := k.get(t, "/stored.jpg/resize-10x.png")
	wantStatus(t, resp, body, http.StatusOK)
	if b := decodeImage(t, body, "png").Bounds(); b.Dx() != 10 || b.Dy() != 5 {
		t.Errorf("variant = %dx%d, want 10x5", b.Dx(), b.Dy())
	}
}

// swapTransform replaces the pipeline for one test.
func swapTransform(t *testing.T, fn func(context.Context, []byte, imageOptions) ([]byte,
	string, error)) {
	t.Helper()
	transformFunc = fn
	t.Cleanup(func() { transformFunc = transformImage })
}

func TestPipelinePanicIs502(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/p.jpg", testJPEG(t, 64, 32))
	k := newKatana(t, o, nil)
	var logs syncBuffer
	k.s.log = slog.New(slog.NewTextHandler(&logs, nil))
	swapTransform(t, func(context.Context, []byte, imageOptions) ([]byte, string, error) {
		var m map[string]int
		m["decoder bug"]++ // a nil-map write: a real runtime panic
		return nil, "", nil
	})

	resp, body := k.get(t, "/p.jpg/resize-16x.png")
	wantStatus(t, resp, body, http.StatusBadGateway)
	if exists(filepath.Join(k.dir, "p-16x0-0-q75.png")) {
		t.Error("a variant was stored for a panicking pipeline")
	}
	log := logs.String()
	if !strings.Contains(log, "image pipeline panicked") ||
		!strings.Contains(log, "cache_path=p/source.jpg") {
		t.Errorf("log does not report the panic with the source's cache path:\n%s", log)
	}

	transformFunc = transformImage
	resp, body = k.get(t, "/p.jpg/resize-16x.png")
	wantStatus(t, resp, body, http.StatusOK)
	if b := decodeImage(t, body, "png").Bounds(); b.Dx() != 16 || b.Dy() != 8 {
		t.Errorf("variant after the panic = %dx%d, want 16x8", b.Dx(), b.Dy())
	}
}

func TestClientGoneCancelsImageWork(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/slow.jpg", testJPEG(t, 64, 64))
	k := newKatana(t, o, nil)
	started, seen := make(chan struct{}), make(chan error, 1)
	swapTransform(t, func(ctx context.Context, _ []byte, _ imageOptions) ([]byte, string,
		error) {
		close(started)
		select {
		case <-ctx.Done():
			seen <- ctx.Err()
		case <-time.After(30 * time.Second): // a guard against hanging, not a measure
			seen <- errors.New("the pipeline's context was never cancelled")
		}
		return nil, "", ctx.Err()
	})

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, k.URL+"/slow.jpg/resize-8x.png", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-started
	cancel()
	if err := <-seen; !errors.Is(err, context.Canceled) {
		t.Fatalf("pipeline context ended with %v, want context.Canceled", err)
	}
	<-errc
	if exists(filepath.Join(k.dir, "slow-8x0-0-q75.png")) {
		t.Error("a variant was stored for a request whose client left")
	}
}

func TestMalformedPathsAreRefused(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/a.jpg", testJPEG(t, 8, 8))
	k := newKatana(t, o, nil)
	addr := k.Listener.Addr().String()
	tests := []struct {
		target string
		status int
	}{
		{"/a%00.jpg", 400},
		{"/a%0d%0aSet-Cookie:%20x=1.jpg", 400},
		{"/a%0aX-Injected:%201.jpg", 400},
		{"/a%7f.jpg", 400},
		{"/a%1b[31m.jpg", 400},
		{"/%c0%af.jpg", 400},       // overlong UTF-8 for "/"
		{"/%ed%a0%80.jpg", 400},    // a UTF-16 surrogate
		{"/%f8%88%80%80.jpg", 400}, // 5-byte UTF-8
		{"/a%c3.jpg", 400},         // truncated sequence
		{"/a%5c..%5cb.jpg", 400},
		{"/a/%2e%2e/%2e%2e/b.jpg", 400},
		{"/a/..%2fb.jpg", 400},
		{"/x.jpg/resize-10x.png/../../../etc.jpg", 400},
		{"/" + strings.Repeat("%41", 2100) + ".jpg", 414},
		{"/" + strings.Repeat("é", 1100) + ".jpg", 414},
		{"/.katana/placeholder/x.jpg", 400},
		{"/a.jpg.META/x.jpg", 400},
		{"/.tmp-x/a.jpg", 400},
		{"/" + strings.Repeat("n", 251) + ".jpg", 414}, // its sidecar's name is over 255
	}
	for _, tt := range tests {
		t.Run(tt.target[:min(len(tt.target), 40)], func(t *testing.T) {
			if got := rawGet(t, addr, tt.target); got != tt.status {
				t.Errorf("GET %q = %d, want %d", tt.target, got, tt.status)
			}
		})
	}
	if n := o.total(); n != 0 {
		t.Errorf("origin saw %d requests for malformed paths, want 0", n)
	}
	if files := cacheFiles(t, filepath.Dir(k.dir)); len(files) != 0 {
		t.Errorf("files written for malformed paths: %v", files)
	}
}

func TestCachePathLengths(t *testing.T) {
	tests := []struct {
		p    string
		want error
	}{
		{strings.Repeat("a", 250), nil},
		{strings.Repeat("a", 251), errLongPath}, // with .META: 256 bytes
		{strings.Repeat("abc/", 760) + "x", nil},
		{strings.Repeat("abc/", 800) + "x", errLongPath},
	}
	for _, tt := range tests {
		_, err := cachePath(tt.p)
		if !errors.Is(err, tt.want) && (err != nil || tt.want != nil) {
			t.Errorf("cachePath(%d bytes) error = %v, want %v", len(tt.p), err, tt.want)
		}
	}
}

func TestResponsesEchoNoClientInput(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/ok.jpg", testJPEG(t, 8, 8))
	k := newKatana(t, o, func(c *Config) { c.AccelRedirect = true })
	const marker = "MARKERzq"
	for _, p := range []string{"/" + marker + ".jpg", "/" + marker + ".txt",
		"/" + marker + "%00.jpg", "/" + marker + ".jpg/resize-10x.gif",
		"/" + strings.Repeat(marker, 300) + ".jpg"} {
		t.Run(p[:min(len(p), 30)], func(t *testing.T) {
			resp, body, raw := rawResponse(t, k.Listener.Addr().String(), p)
			if resp.StatusCode < 400 {
				t.Fatalf("GET %q = %d, want an error", p, resp.StatusCode)
			}
			if strings.Contains(raw, marker) || strings.Contains(string(body), marker) {
				t.Errorf("GET %q: the answer echoes the path:\n%s", p, raw)
			}
		})
	}

	// X-Accel-Redirect carries the cache path, which comes from the request:
	// percent-encoded, so that nginx finds that file and no other.
	tests := []struct{ origin, request, want string }{
		{"/d iér/ok.jpg", "/d%20i%C3%A9r/ok.jpg", "/resized/d%20i%C3%A9r/ok/source.jpg"},
		{"/q?x%/ok.jpg", "/q%3Fx%25/ok.jpg", "/resized/q%3Fx%25/ok/source.jpg"},
		{"/a;b=c/ok.jpg", "/a;b=c/ok.jpg", "/resized/a%3Bb=c/ok/source.jpg"},
	}
	for _, tt := range tests {
		o.put(tt.origin, testJPEG(t, 8, 8))
		resp, body := k.get(t, tt.request)
		wantStatus(t, resp, body, http.StatusOK)
		if got := resp.Header.Get("X-Accel-Redirect"); got != tt.want {
			t.Errorf("GET %s: X-Accel-Redirect = %q, want %q", tt.request, got, tt.want)
		}
	}
}

// rawResponse sends a request line as written and returns the response, its
// body and the whole answer as text.
func rawResponse(t *testing.T, addr, target string) (*http.Response, []byte, string) {
	t.Helper()
	status, raw := rawExchange(t, addr, "GET "+target+" HTTP/1.1\r\nHost: test\r\n"+
		"Connection: close\r\n\r\n")
	resp := &http.Response{StatusCode: status}
	_, body, _ := strings.Cut(raw, "\r\n\r\n")
	return resp, []byte(body), raw
}

// rawExchange writes req on a new connection and returns the status and all
// that came back until the server closed it.
func rawExchange(t *testing.T, addr, req string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, req)
	raw, _ := io.ReadAll(c)
	var proto string
	var status int
	if _, err := fmt.Sscanf(string(raw), "%s %d", &proto, &status); err != nil {
		t.Fatalf("%q: no status line in %q", req[:min(len(req), 40)], truncate(raw))
	}
	return status, string(raw)
}

// lyingOrigin answers every request with the raw response write makes.
func lyingOrigin(t *testing.T, write func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				c.Read(buf)
				write(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestLyingOriginBodies(t *testing.T) {
	img := testJPEG(t, 64, 64)
	big := bytes.Repeat(img, (3<<20)/len(img)+1)
	tests := []struct {
		name   string
		write  func(c net.Conn)
		status int
		msg    string
	}{
		{"Content-Length over max_source_bytes", func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n"+
				"Content-Length: 2147483648\r\n\r\n")
			c.Write(img)
		}, http.StatusBadGateway, "too large"},
		{"chunked body over max_source_bytes", func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n"+
				"Transfer-Encoding: chunked\r\n\r\n")
			for b := big; len(b) > 0; b = b[min(len(b), 64<<10):] {
				fmt.Fprintf(c, "%x\r\n%s\r\n", min(len(b), 64<<10), b[:min(len(b), 64<<10)])
			}
			io.WriteString(c, "0\r\n\r\n")
		}, http.StatusBadGateway, "too large"},
		{"body past Content-Length is not read", func(c net.Conn) {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(img))
			c.Write(img)
			io.WriteString(c, "<html>smuggled</html>")
		}, http.StatusOK, ""},
		{"image header, HTML inside", func(c net.Conn) {
			body := append([]byte("\xff\xd8\xff"), "<html>not really</html>"...)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}, http.StatusBadGateway, "could not be decoded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := lyingOrigin(t, tt.write)
			k := newKatana(t, nil, func(c *Config) {
				c.Origins["default"] = map[string]*ClusterConfig{"t": {IPs: []string{addr}}}
				c.MaxSourceBytes = 1 << 20
			})
			resp, body := k.get(t, "/l.jpg/resize-32x.png")
			wantStatus(t, resp, body, tt.status)
			if tt.status != http.StatusOK {
				if !strings.Contains(string(body), tt.msg) {
					t.Errorf("body = %q, want it to say %q", body, tt.msg)
				}
				for _, f := range cacheFiles(t, k.dir) {
					if !strings.HasPrefix(f, "l/source.jpg") || tt.msg == "too large" {
						t.Errorf("a refused body left %s in the cache", f)
					}
				}
				return
			}
			if b := decodeImage(t, body, "png").Bounds(); b.Dx() != 32 {
				t.Errorf("variant is %d wide, want 32", b.Dx())
			}
		})
	}
}

func TestEveryImageAnswerIsNosniff(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/n.jpg", testJPEG(t, 32, 32), "ETag", `"n1"`, "Cache-Control", "max-age=60")
	o.put("/p.png", testPNG(t, 8, 8, color.NRGBA{255, 255, 255, 255}), "Cache-Control", "no-store")
	k := newKatana(t, o, nil)
	tests := []struct {
		method, path string
		header       []string
		status       int
	}{
		{"GET", "/n.jpg", nil, 200},
		{"GET", "/n.jpg", nil, 200}, // a hit
		{"HEAD", "/n.jpg", nil, 200},
		{"GET", "/n.jpg", []string{"If-None-Match", `"n1"`}, 304},
		{"GET", "/n.jpg", []string{"Range", "bytes=0-9"}, 206},
		{"GET", "/n.jpg/resize-8x.webp", nil, 200},
		{"GET", "/n.jpg/resize-8x.png", []string{"Accept", "image/webp"}, 200},
		{"GET", "/p.png", nil, 200}, // not stored: passed through once
		{"GET", "/missing.jpg", nil, 404},
		{"GET", "/n.jpg/resize-8x.gif", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+strings.Join(tt.header, " "), func(t *testing.T) {
			resp, body := k.do(t, tt.method, tt.path, tt.header...)
			wantStatus(t, resp, body, tt.status)
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
		})
	}
}
