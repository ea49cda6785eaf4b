// originhelp_test.go holds the test origin servers, sinks and clock used by
// the origin tests.
package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"image/jpeg"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// nodeModTime is the Last-Modified of every file a nodeServer serves.
var nodeModTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// nodeServer is an origin node on 127.0.0.1 that counts and records the
// requests it receives before handing them to its handler.
type nodeServer struct {
	*httptest.Server
	heads, gets atomic.Int64

	mu   sync.Mutex // guards reqs
	reqs []*http.Request
}

// newNodeServer starts a plain HTTP node serving h.
func newNodeServer(t *testing.T, h http.Handler) *nodeServer {
	t.Helper()
	s := &nodeServer{}
	s.Server = httptest.NewServer(s.wrap(h))
	t.Cleanup(s.Close)
	return s
}

// newTLSNodeServer starts an HTTPS node serving h.
func newTLSNodeServer(t *testing.T, h http.Handler) *nodeServer {
	t.Helper()
	s := &nodeServer{}
	s.Server = httptest.NewUnstartedServer(s.wrap(h))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes a test makes fail
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *nodeServer) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodHead:
			s.heads.Add(1)
		case http.MethodGet:
			s.gets.Add(1)
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, r.Clone(r.Context()))
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// addr returns the node as host:port.
func (s *nodeServer) addr() string { return s.Listener.Addr().String() }

// requests returns a copy of the requests received so far.
func (s *nodeServer) requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.reqs...)
}

// memFilesHandler serves files from memory with an ETag and a Last-Modified,
// answering HEAD and conditional requests the way net/http does.
func memFilesHandler(files map[string][]byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", testETag(b))
		w.Header().Set("Content-Type", "image/jpeg")
		http.ServeContent(w, r, path.Base(r.URL.Path), nodeModTime, bytes.NewReader(b))
	})
}

// statusOnly answers every request with status.
func statusOnly(status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, http.StatusText(status), status)
	})
}

// headOrGet sends HEAD requests to head and the rest to get.
func headOrGet(head, get http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			head.ServeHTTP(w, r)
			return
		}
		get.ServeHTTP(w, r)
	})
}

// hangingHandler accepts requests and never answers them until the client
// goes away or the test ends; started receives one value per request.
func hangingHandler(t *testing.T) (http.Handler, <-chan struct{}) {
	started := make(chan struct{}, 100)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	return h, started
}

func testETag(b []byte) string { return fmt.Sprintf(`"%x"`, sha256.Sum256(b)) }

// baselineJPEG returns the bytes of testdata/cases/jpeg/baseline.jpg, a 128x128 JPEG.
func baselineJPEG(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/cases/jpeg/baseline.jpg")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkBaselineJPEG fails unless b is the 128x128 test JPEG, decoded.
func checkBaselineJPEG(t *testing.T, b []byte) {
	t.Helper()
	if !bytes.Equal(b, baselineJPEG(t)) {
		t.Fatalf("body is %d bytes, not the %d of testdata/cases/jpeg/baseline.jpg",
			len(b), len(baselineJPEG(t)))
	}
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("jpeg.Decode(body) = %v", err)
	}
	if got := img.Bounds().Size(); got.X != 128 || got.Y != 128 {
		t.Fatalf("decoded size = %v, want 128x128", got)
	}
}

// newFileSink returns an empty temporary file to fetch into.
func newFileSink(t testing.TB) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "sink")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// fileSinkBytes returns what a sink file holds.
func fileSinkBytes(t testing.TB, f *os.File) []byte {
	t.Helper()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// clusterOf returns a cluster of the given nodes.
func clusterOf(nodes ...string) *ClusterConfig { return &ClusterConfig{IPs: nodes} }

// newOriginForTest builds origin "test" with generous timeouts unless opt sets
// them, on a test clock.
func newOriginForTest(t *testing.T, clusters map[string]*ClusterConfig,
	opt originOptions) (*Origin, *fakeClock) {
	t.Helper()
	if opt.ProbeTimeout == 0 {
		opt.ProbeTimeout = 5 * time.Second
	}
	if opt.FetchTimeout == 0 {
		opt.FetchTimeout = 5 * time.Second
	}
	if opt.UserAgent == "" {
		opt.UserAgent = "Katana/test"
	}
	o, err := newOrigin("test", clusters, opt)
	if err != nil {
		t.Fatalf("newOrigin() = %v", err)
	}
	t.Cleanup(o.Close)
	clk := &fakeClock{t: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	o.now = clk.now
	return o, clk
}

// nodeNamed returns the node of o's cluster cname configured as name.
func nodeNamed(t *testing.T, o *Origin, cname, name string) *node {
	t.Helper()
	for _, c := range o.clusters {
		for _, n := range c.nodes {
			if c.name == cname && n.name == name {
				return n
			}
		}
	}
	t.Fatalf("no node %s in cluster %s", name, cname)
	return nil
}

// countingProxy starts an HTTP forward proxy on 127.0.0.1 that counts the
// requests it relays.
func countingProxy(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	tr := &http.Transport{} // no proxy of its own
	t.Cleanup(tr.CloseIdleConnections)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.Method == http.MethodConnect {
			tunnel(w, r)
			return
		}
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.Header.Set("X-Test-Proxy", "relayed")
		resp, err := tr.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// tunnel answers a CONNECT by relaying bytes between the client and r.Host.
func tunnel(w http.ResponseWriter, r *http.Request) {
	up, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer up.Close()
	w.WriteHeader(http.StatusOK)
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	done := make(chan struct{})
	go func() { io.Copy(up, buf); up.Close(); close(done) }()
	io.Copy(conn, up)
	conn.Close()
	<-done
}
