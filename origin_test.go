// origin_test.go drives Origin against real origin servers on 127.0.0.1.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const probedPath = "/img/a.jpg"

func TestFetchFindsSecondOfThreeClusters(t *testing.T) {
	body := baselineJPEG(t)
	files := map[string][]byte{probedPath: body}
	empty := map[string][]byte{}
	srv := func(f map[string][]byte) *nodeServer { return newNodeServer(t, memFilesHandler(f)) }
	c1 := []*nodeServer{srv(empty), srv(empty)}
	c2 := []*nodeServer{srv(files), srv(files)}
	c3 := []*nodeServer{srv(empty)}
	o, _ := newOriginForTest(t, map[string]*ClusterConfig{
		"c1": clusterOf(c1[0].addr(), c1[1].addr()),
		"c2": clusterOf(c2[0].addr(), c2[1].addr()),
		"c3": clusterOf(c3[0].addr()),
	}, originOptions{})

	for round := 1; round <= 2; round++ {
		sink := newFileSink(t)
		resp, err := o.Fetch(context.Background(), probedPath, validators{}, sink)
		if err != nil {
			t.Fatalf("round %d: Fetch() = %v", round, err)
		}
		if resp.Status != http.StatusOK || resp.Cluster != "c2" || resp.Size != int64(len(body)) {
			t.Fatalf("round %d: Fetch() = status %d cluster %q size %d, want 200 c2 %d",
				round, resp.Status, resp.Cluster, resp.Size, len(body))
		}
		checkBaselineJPEG(t, fileSinkBytes(t, sink))
		if got := resp.Header.Get("ETag"); got != testETag(body) {
			t.Errorf("round %d: ETag = %q, want %q", round, got, testETag(body))
		}
		if got := c2[0].gets.Load() + c2[1].gets.Load(); got != int64(round) {
			t.Errorf("round %d: GETs on c2 = %d, want %d", round, got, round)
		}
	}
	// One probe round in all: the second Fetch used the remembered location.
	for i, s := range append(append(c1, c2...), c3...) {
		if s.heads.Load() > 1 {
			t.Errorf("server %d got %d HEADs, want at most 1", i, s.heads.Load())
		}
	}
	for i, s := range append(c1, c3...) {
		if s.gets.Load() != 0 {
			t.Errorf("server %d of c1/c3: GETs = %d, want 0", i, s.gets.Load())
		}
	}
}

func TestProbeAtMostThreeNodesPerCluster(t *testing.T) {
	var big []*nodeServer
	var addrs []string
	for range 5 {
		s := newNodeServer(t, memFilesHandler(nil))
		big = append(big, s)
		addrs = append(addrs, s.addr())
	}
	small := newNodeServer(t, memFilesHandler(nil))
	o, _ := newOriginForTest(t, map[string]*ClusterConfig{
		"big": clusterOf(addrs...), "small": clusterOf(small.addr()),
	}, originOptions{})

	_, err := o.Fetch(context.Background(), probedPath, validators{}, newFileSink(t))
	if !errors.Is(err, errNotFound) {
		t.Fatalf("Fetch() = %v, want errNotFound", err)
	}
	var total int64
	for i, s := range big {
		if n := s.heads.Load(); n > 1 {
			t.Errorf("node %d got %d HEADs, want at most 1 (distinct nodes)", i, n)
		}
		total += s.heads.Load()
	}
	if total != probesPerCluster || small.heads.Load() != 1 {
		t.Errorf("HEADs on big, small = %d, %d, want %d, 1", total, small.heads.Load(),
			probesPerCluster)
	}
}

func TestFetchNodeDownSiblingServes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // connections are refused from now on
	good := newNodeServer(t, memFilesHandler(map[string][]byte{probedPath: baselineJPEG(t)}))
	other := newNodeServer(t, memFilesHandler(nil))
	o, clk := newOriginForTest(t, map[string]*ClusterConfig{
		"c1": clusterOf(dead, good.addr()), "c2": clusterOf(other.addr()),
	}, originOptions{})

	sink := newFileSink(t)
	resp, err := o.Fetch(context.Background(), probedPath, validators{}, sink)
	if err != nil {
		t.Fatalf("Fetch() = %v", err)
	}
	if resp.Node != good.addr() {
		t.Errorf("Fetch().Node = %s, want %s", resp.Node, good.addr())
	}
	checkBaselineJPEG(t, fileSinkBytes(t, sink))

	// The dead node answered nothing, but it may have lost the race before
	// refusing; probe until it has been tried and check it backs off then.
	n := nodeNamed(t, o, "c1", dead)
	for i := 0; n.health.up(clk.now()) && i < 50; i++ {
		o.memo.forget(probedPath)
		_, err := o.Fetch(context.Background(), probedPath, validators{}, newFileSink(t))
		if err != nil {
			t.Fatalf("Fetch() = %v", err)
		}
	}
	if n.health.up(clk.now()) {
		t.Fatalf("dead node is still up after refusing connections")
	}
	if got := n.health.lastKind(); got != errOriginFailed {
		t.Errorf("dead node's last failure = %v, want %v", got, errOriginFailed)
	}
}

func TestFetchHangingNodeCostsOneTimeout(t *testing.T) {
	hang, started := hangingHandler(t)
	slow := newNodeServer(t, hang)
	good := newNodeServer(t, memFilesHandler(map[string][]byte{probedPath: baselineJPEG(t)}))
	o, clk := newOriginForTest(t, map[string]*ClusterConfig{
		"slow": clusterOf(slow.addr()), "main": clusterOf(good.addr()),
	}, originOptions{ProbeTimeout: 300 * time.Millisecond, NodeBackoff: time.Minute})
	fetch := func(p string) error {
		_, err := o.Fetch(context.Background(), p, validators{}, newFileSink(t))
		return err
	}

	// The file may be on the cluster that does not answer: not a 404.
	if err := fetch("/missing-1.jpg"); !errors.Is(err, errOriginTimeout) {
		t.Fatalf("Fetch(missing-1) = %v, want errOriginTimeout", err)
	}
	awaitHang(t, started)
	// Now it is skipped: the answer comes without asking it.
	if err := fetch("/missing-2.jpg"); !errors.Is(err, errOriginTimeout) {
		t.Fatalf("Fetch(missing-2) = %v, want errOriginTimeout (cluster down)", err)
	}
	if err := fetch(probedPath); err != nil {
		t.Fatalf("Fetch(%s) = %v", probedPath, err)
	}
	if got := probeHEADs(slow); got != 1 {
		t.Fatalf("hanging node got %d probe HEADs, want 1", got)
	}

	// After its back-off it is probed again.
	clk.advance(2 * time.Minute)
	if err := fetch("/missing-3.jpg"); !errors.Is(err, errOriginTimeout) {
		t.Fatalf("Fetch(missing-3) = %v, want errOriginTimeout", err)
	}
	awaitHang(t, started)
	if got := probeHEADs(slow); got != 2 {
		t.Errorf("hanging node got %d probe HEADs after its back-off, want 2", got)
	}
}

// probeHEADs counts the HEADs a node got for files, leaving out the
// liveness checks (HEAD /) that follow a timeout.
func probeHEADs(s *nodeServer) int {
	n := 0
	for _, r := range s.requests() {
		if r.Method == http.MethodHead && r.URL.Path != "/" {
			n++
		}
	}
	return n
}

// A timeout on one slow path must not keep the node, and every other path,
// out of service: a node that still answers HEAD / comes back at once.
func TestSlowPathDoesNotTakeTheNodeDown(t *testing.T) {
	files := memFilesHandler(map[string][]byte{probedPath: baselineJPEG(t)})
	hang, _ := hangingHandler(t)
	mux := http.NewServeMux()
	mux.Handle("/slow.jpg", hang)
	mux.Handle("/", files)
	n1 := newNodeServer(t, mux)
	o, _ := newOriginForTest(t, map[string]*ClusterConfig{"c": clusterOf(n1.addr())},
		originOptions{ProbeTimeout: 200 * time.Millisecond, FetchTimeout: 200 * time.Millisecond,
			NodeBackoff: time.Minute})
	if _, err := o.Fetch(context.Background(), "/slow.jpg", validators{}, newFileSink(t)); !errors.Is(err, errOriginTimeout) {
		t.Fatalf("Fetch(slow) = %v, want errOriginTimeout", err)
	}
	n := nodeNamed(t, o, "c", n1.addr())
	waitUntil(t, func() bool { return n.health.up(o.now()) })
	if _, err := o.Fetch(context.Background(), probedPath, validators{}, newFileSink(t)); err != nil {
		t.Errorf("Fetch(%s) after another path timed out = %v, want the file", probedPath, err)
	}
}

func TestFetchCoalescesConcurrentCalls(t *testing.T) {
	const callers = 100
	body := baselineJPEG(t)
	gate := make(chan struct{})
	files := memFilesHandler(map[string][]byte{probedPath: body})
	has := newNodeServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			<-gate // hold the probe until every caller has joined
		}
		files.ServeHTTP(w, r)
	}))
	hasNot := newNodeServer(t, memFilesHandler(nil))
	o, _ := newOriginForTest(t, map[string]*ClusterConfig{
		"a": clusterOf(has.addr()), "b": clusterOf(hasNot.addr()),
	}, originOptions{})

	sinks := make([]*os.File, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		sinks[i] = newFileSink(t)
		wg.Go(func() {
			_, errs[i] = o.Fetch(context.Background(), probedPath, validators{}, sinks[i])
		})
	}
	waitUntil(t, func() bool { return o.flights.callers(probedPath, validators{}) == callers })
	close(gate)
	wg.Wait()

	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("Fetch() #%d = %v", i, errs[i])
		}
		if !bytes.Equal(fileSinkBytes(t, sinks[i]), body) {
			t.Fatalf("sink #%d does not hold the file", i)
		}
	}
	if h, g := has.heads.Load()+hasNot.heads.Load(), has.gets.Load(); h != 2 || g != 1 {
		t.Errorf("HEADs, GETs = %d, %d, want 2, 1", h, g)
	}
	if got := o.stats.Coalesced.Load(); got != callers-1 {
		t.Errorf("coalesced calls = %d, want %d", got, callers-1)
	}
}

// awaitHang waits for a hanging handler to have received a request.
func awaitHang(t *testing.T, started <-chan struct{}) {
	t.Helper()
	select {
	case <-started:
	case <-time.After(time.Minute):
		t.Fatal("the hanging node never received the probe")
	}
}

// waitUntil polls cond until it holds; it fails the test after a long while.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; !cond(); i++ {
		if i > 20000 {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFetchTruncatedBodyTriesSibling(t *testing.T) {
	body := baselineJPEG(t)
	cut := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:1000]) // then the handler returns: the connection is closed
	})
	// flaky wins the probe and breaks during the body; good then serves it.
	flaky := newNodeServer(t, headOrGet(memFilesHandler(map[string][]byte{probedPath: body}), cut))
	good := newNodeServer(t, headOrGet(statusOnly(http.StatusServiceUnavailable),
		memFilesHandler(map[string][]byte{probedPath: body})))
	other := newNodeServer(t, memFilesHandler(nil))
	o, _ := newOriginForTest(t, map[string]*ClusterConfig{
		"c1": clusterOf(flaky.addr(), good.addr()), "c2": clusterOf(other.addr()),
	}, originOptions{})

	sink := newFileSink(t)
	resp, err := o.Fetch(context.Background(), probedPath, validators{}, sink)
	if err != nil {
		t.Fatalf("Fetch() = %v", err)
	}
	if resp.Node != good.addr() || flaky.gets.Load() != 1 || good.gets.Load() != 1 {
		t.Errorf("Fetch() from %s after GETs flaky=%d good=%d, want %s after 1, 1",
			resp.Node, flaky.gets.Load(), good.gets.Load(), good.addr())
	}
	checkBaselineJPEG(t, fileSinkBytes(t, sink)) // nothing left of the cut body
}

func TestFetchErrors(t *testing.T) {
	body := baselineJPEG(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte("x"), 5000))
	zw.Close()
	tests := []struct {
		name string
		h    http.Handler
		opt  originOptions
		want error
	}{
		{"truncated", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			w.Write(body[:10])
		}), originOptions{}, errOriginFailed},
		{"500", statusOnly(http.StatusInternalServerError), originOptions{}, errOriginFailed},
		{"404", statusOnly(http.StatusNotFound), originOptions{}, errNotFound},
		{"410", statusOnly(http.StatusGone), originOptions{}, errNotFound},
		{"bad gzip", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(body)
		}), originOptions{}, errOriginFailed},
		{"brotli", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "br")
			w.Write(body)
		}), originOptions{}, errOriginFailed},
		{"over limit by Content-Length", memFilesHandler(map[string][]byte{probedPath: body}),
			originOptions{MaxBodyBytes: 1000}, errTooLarge},
		{"over limit chunked", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write(body[:2000])
			w.(http.Flusher).Flush() // no Content-Length: chunked
			w.Write(body[2000:])
		}), originOptions{MaxBodyBytes: 1000}, errTooLarge},
		{"over limit once decoded", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz.Bytes())
		}), originOptions{MaxBodyBytes: 1000}, errTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newNodeServer(t, tt.h)
			o, _ := newOriginForTest(t, map[string]*ClusterConfig{"c": clusterOf(s.addr())}, tt.opt)
			_, err := o.Fetch(context.Background(), probedPath, validators{}, newFileSink(t))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Fetch() = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), s.addr()) {
				t.Errorf("Fetch() = %q, want the node %s named", err, s.addr())
			}
			// Failures are not remembered: the next call asks again.
			o.Fetch(context.Background(), probedPath, validators{}, newFileSink(t))
			if got, want := s.gets.Load(), int64(2); tt.want != errNotFound && got != want {
				t.Errorf("GETs after two failed fetches = %d, want %d", got, want)
			}
		})
	}
}

func TestFetchProbeErrors(t *testing.T) {
	body := baselineJPEG(t)
	found := memFilesHandler(map[string][]byte{probedPath: body})
	tests := []struct {
		name   string
		c1, c2 http.Handler
		want   error // nil: found
	}{
		{"500 and 404", statusOnly(500), statusOnly(404), errOriginFailed},
		{"404 and 410", statusOnly(404), statusOnly(410), errNotFound},
		{"503 and found", statusOnly(503), found, nil},
		{"redirect and 404", http.RedirectHandler("http://127.0.0.1:1/x", 302),
			statusOnly(404), errNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s1, s2 := newNodeServer(t, tt.c1), newNodeServer(t, tt.c2)
			o, _ := newOriginForTest(t, map[string]*ClusterConfig{
				"c1": clusterOf(s1.addr()), "c2": clusterOf(s2.addr()),
			}, originOptions{})
			_, err := o.Fetch(context.Background(), probedPath, validators{}, newFileSink(t))
			if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
				t.Fatalf("Fetch() = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFetchNotFoundIsRememberedBriefly(t *testing.T) {
	var servers []*nodeServer
	clusters := map[string]*ClusterConfig{}
	for _, name := range []string{"c1", "c2", "c3"} {
		s := newNodeServer(t, memFilesHandler(nil))
		servers = append(servers, s)
		clusters[name] = clusterOf(s.addr())
	}
	o, clk := newOriginForTest(t, clusters, originOptions{NegativeTTL: 10 * time.Second})
	heads := func() (n int64) {
		for _, s := range servers {
			n += s.heads.Load()
		}
		return n
	}

	for i, step := range []struct {
		advance time.Duration
		heads   int64
	}{{0, 3}, {5 * time.Second, 3}, {6 * time.Second, 6}} {
		clk.advance(step.advance)
		_, err := o.Fetch(context.Background(), probedPath, validators{}, newFileSink(t))
		if !errors.Is(err, errNotFound) {
			t.Fatalf("step %d: Fetch() = %v, want errNotFound", i, err)
		}
		if got := heads(); got != step.heads {
			t.Errorf("step %d: HEADs = %d, want %d", i, got, step.heads)
		}
	}
}

func TestFetchDecodesGzip(t *testing.T) {
	body := baselineJPEG(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(body)
	zw.Close()
	s := newNodeServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(gz.Bytes())
	}))
	o, _ := newOriginForTest(t, map[string]*ClusterConfig{"c": clusterOf(s.addr())},
		originOptions{})

	sink := newFileSink(t)
	resp, err := o.Fetch(context.Background(), probedPath, validators{}, sink)
	if err != nil {
		t.Fatalf("Fetch() = %v", err)
	}
	checkBaselineJPEG(t, fileSinkBytes(t, sink))
	if resp.Size != int64(len(body)) {
		t.Errorf("Fetch().Size = %d, want %d", resp.Size, len(body))
	}
	for _, k := range []string{"Content-Encoding", "Content-Length"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("Fetch().Header %s = %q, want none", k, v)
		}
	}
	if got := resp.Header.Get("Content-Type"); got != "image/jpeg" {
		t.Errorf("Fetch().Header Content-Type = %q, want image/jpeg", got)
	}
}

func TestFetchConditional(t *testing.T) {
	body := baselineJPEG(t)
	files := map[string][]byte{probedPath: body}
	lastMod := nodeModTime.Format(http.TimeFormat)
	tests := []struct {
		name       string
		clusters   int
		v          validators
		wantStatus int
		heads      int64 // on the node holding the file
		gets       int64
	}{
		{"HEAD 304 by ETag", 2, validators{ETag: testETag(body)}, 304, 1, 0},
		{"HEAD 304 by date", 2, validators{LastModified: lastMod}, 304, 1, 0},
		{"HEAD 200 then GET", 2, validators{ETag: `"old"`}, 200, 1, 1},
		{"single node GET 304", 1, validators{ETag: testETag(body)}, 304, 0, 1},
		{"single node GET 200", 1, validators{ETag: `"old"`}, 200, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			has := newNodeServer(t, memFilesHandler(files))
			clusters := map[string]*ClusterConfig{"has": clusterOf(has.addr())}
			if tt.clusters == 2 {
				clusters["other"] = clusterOf(newNodeServer(t, memFilesHandler(nil)).addr())
			}
			o, _ := newOriginForTest(t, clusters, originOptions{})

			sink := newFileSink(t)
			resp, err := o.Fetch(context.Background(), probedPath, tt.v, sink)
			if err != nil {
				t.Fatalf("Fetch() = %v", err)
			}
			if resp.Status != tt.wantStatus {
				t.Errorf("Fetch().Status = %d, want %d", resp.Status, tt.wantStatus)
			}
			if got := resp.Header.Get("ETag"); got != testETag(body) {
				t.Errorf("Fetch().Header ETag = %q, want %q", got, testETag(body))
			}
			if h, g := has.heads.Load(), has.gets.Load(); h != tt.heads || g != tt.gets {
				t.Errorf("HEADs, GETs = %d, %d, want %d, %d", h, g, tt.heads, tt.gets)
			}
			wantLen := 0
			if tt.wantStatus == 200 {
				wantLen = len(body)
			}
			if got := len(fileSinkBytes(t, sink)); got != wantLen {
				t.Errorf("sink holds %d bytes, want %d", got, wantLen)
			}
			first := has.requests()[0]
			if tt.v.ETag != "" && first.Header.Get("If-None-Match") != tt.v.ETag {
				t.Errorf("If-None-Match = %q, want %q",
					first.Header.Get("If-None-Match"), tt.v.ETag)
			}
			if tt.v.LastModified != "" && first.Header.Get("If-Modified-Since") != lastMod {
				t.Errorf("If-Modified-Since = %q, want %q",
					first.Header.Get("If-Modified-Since"), lastMod)
			}
		})
	}
}

func TestFetchSendsClusterHeaders(t *testing.T) {
	has := newNodeServer(t, memFilesHandler(map[string][]byte{probedPath: baselineJPEG(t)}))
	other := newNodeServer(t, memFilesHandler(nil))
	o, _ := newOriginForTest(t, map[string]*ClusterConfig{
		"has": {IPs: []string{has.addr()},
			Headers: map[string]string{"host": "img.example.test", "X-Token": "s3cret"}},
		"other": clusterOf(other.addr()),
	}, originOptions{UserAgent: "Katana/2.0.0"})

	_, err := o.Fetch(context.Background(), probedPath, validators{}, newFileSink(t))
	if err != nil {
		t.Fatalf("Fetch() = %v", err)
	}
	reqs := has.requests()
	if len(reqs) != 2 || reqs[0].Method != "HEAD" || reqs[1].Method != "GET" {
		t.Fatalf("requests = %d, want a HEAD then a GET", len(reqs))
	}
	for _, r := range reqs {
		if r.Host != "img.example.test" || r.Header.Get("X-Token") != "s3cret" ||
			r.UserAgent() != "Katana/2.0.0" {
			t.Errorf("%s: Host, X-Token, User-Agent = %q, %q, %q, want img.example.test, s3cret, "+
				"Katana/2.0.0", r.Method, r.Host, r.Header.Get("X-Token"), r.UserAgent())
		}
	}
	for _, r := range other.requests() { // its probe may have been cancelled before it arrived
		if r.Header.Get("X-Token") != "" || r.Host != other.addr() {
			t.Errorf("other cluster got X-Token %q, Host %q, want none, %s",
				r.Header.Get("X-Token"), r.Host, other.addr())
		}
	}
}

func TestFetchEncodesPath(t *testing.T) {
	tests := []struct{ path, uri string }{
		{"/dir x/été.jpg", "/dir%20x/%C3%A9t%C3%A9.jpg"},
		{"/a?b#c%.jpg", "/a%3Fb%23c%25.jpg"},
		{"/plain/a-b_c.jpg", "/plain/a-b_c.jpg"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			files := map[string][]byte{tt.path: baselineJPEG(t)}
			has := newNodeServer(t, memFilesHandler(files))
			other := newNodeServer(t, memFilesHandler(nil))
			o, _ := newOriginForTest(t, map[string]*ClusterConfig{
				"has": clusterOf(has.addr()), "other": clusterOf(other.addr()),
			}, originOptions{})
			sink := newFileSink(t)
			if _, err := o.Fetch(context.Background(), tt.path, validators{}, sink); err != nil {
				t.Fatalf("Fetch(%q) = %v", tt.path, err)
			}
			checkBaselineJPEG(t, fileSinkBytes(t, sink))
			for _, r := range has.requests() {
				if r.RequestURI != tt.uri {
					t.Errorf("%s request URI = %q, want %q", r.Method, r.RequestURI, tt.uri)
				}
			}
		})
	}
}

func TestFetchThroughProxy(t *testing.T) {
	for _, form := range []string{"host:port", "http://host:port"} {
		t.Run(form, func(t *testing.T) {
			proxy, relayed := countingProxy(t)
			addr := proxy.Listener.Addr().String()
			setting := strings.Replace(form, "host:port", addr, 1)
			has := newNodeServer(t, memFilesHandler(map[string][]byte{probedPath: baselineJPEG(t)}))
			other := newNodeServer(t, memFilesHandler(nil))
			o, _ := newOriginForTest(t, map[string]*ClusterConfig{
				"has": clusterOf(has.addr()), "other": clusterOf(other.addr()),
			}, originOptions{Proxy: setting})

			sink := newFileSink(t)
			if _, err := o.Fetch(context.Background(), probedPath, validators{}, sink); err != nil {
				t.Fatalf("Fetch() = %v", err)
			}
			checkBaselineJPEG(t, fileSinkBytes(t, sink))
			reqs := append(has.requests(), other.requests()...)
			for _, r := range reqs {
				if r.Header.Get("X-Test-Proxy") != "relayed" {
					t.Errorf("%s %s reached the origin without the proxy", r.Method, r.URL)
				}
			}
			if len(has.requests()) != 2 || relayed.Load() < int64(len(reqs)) {
				t.Errorf("proxy relayed %d requests, origins got %d (%d on the holder), "+
					"want all of them, 2 on the holder",
					relayed.Load(), len(reqs), len(has.requests()))
			}
		})
	}
}

func TestFetchHTTPSThroughProxy(t *testing.T) {
	proxy, relayed := countingProxy(t)
	has := newTLSNodeServer(t, memFilesHandler(map[string][]byte{probedPath: baselineJPEG(t)}))
	roots := x509.NewCertPool()
	roots.AddCert(has.Certificate())
	o, _ := newOriginForTest(t, map[string]*ClusterConfig{
		"c": {IPs: []string{has.URL}, Headers: map[string]string{"Host": "example.com"}},
	}, originOptions{Proxy: proxy.URL, tlsRoots: roots})

	sink := newFileSink(t)
	if _, err := o.Fetch(context.Background(), probedPath, validators{}, sink); err != nil {
		t.Fatalf("Fetch() = %v", err)
	}
	checkBaselineJPEG(t, fileSinkBytes(t, sink))
	reqs := has.requests()
	if relayed.Load() != 1 || len(reqs) != 1 || reqs[0].TLS.ServerName != "example.com" {
		t.Errorf("proxy tunnels, origin requests = %d, %d, want 1, 1 with SNI example.com",
			relayed.Load(), len(reqs))
	}
}

func TestFetchRedirects(t *testing.T) {
	body := baselineJPEG(t)
	outside := newNodeServer(t, memFilesHandler(map[string][]byte{"/new.jpg": body}))
	mux := http.NewServeMux()
	mux.Handle("/old.jpg", http.RedirectHandler("/new.jpg", http.StatusMovedPermanently))
	mux.Handle("/away.jpg", http.RedirectHandler(outside.URL+"/new.jpg", http.StatusFound))
	mux.Handle("/new.jpg", memFilesHandler(map[string][]byte{"/new.jpg": body}))
	has := newNodeServer(t, mux)
	other := newNodeServer(t, memFilesHandler(nil))
	o, _ := newOriginForTest(t, map[string]*ClusterConfig{
		"has":   {IPs: []string{has.addr()}, Headers: map[string]string{"Host": "img.test"}},
		"other": clusterOf(other.addr()),
	}, originOptions{})

	sink := newFileSink(t)
	if _, err := o.Fetch(context.Background(), "/old.jpg", validators{}, sink); err != nil {
		t.Fatalf("Fetch(/old.jpg) = %v, want the redirect within the cluster followed", err)
	}
	checkBaselineJPEG(t, fileSinkBytes(t, sink))
	for _, r := range has.requests() {
		if r.Host != "img.test" {
			t.Errorf("%s %s: Host = %q, want img.test", r.Method, r.URL.Path, r.Host)
		}
	}
	_, err := o.Fetch(context.Background(), "/away.jpg", validators{}, newFileSink(t))
	if !errors.Is(err, errNotFound) {
		t.Errorf("Fetch(/away.jpg) = %v, want errNotFound", err)
	}
	if n := len(outside.requests()); n != 0 {
		t.Errorf("server outside the cluster got %d requests, want 0", n)
	}
}

func TestFetchHTTPSNode(t *testing.T) {
	body := baselineJPEG(t)
	has := newTLSNodeServer(t, memFilesHandler(map[string][]byte{probedPath: body}))
	other := newNodeServer(t, memFilesHandler(nil))
	clusters := map[string]*ClusterConfig{
		// httptest's certificate is valid for example.com.
		"has":   {IPs: []string{has.URL}, Headers: map[string]string{"Host": "example.com"}},
		"other": clusterOf(other.addr()),
	}
	roots := x509.NewCertPool()
	roots.AddCert(has.Certificate())

	o, _ := newOriginForTest(t, clusters, originOptions{tlsRoots: roots})
	sink := newFileSink(t)
	if _, err := o.Fetch(context.Background(), probedPath, validators{}, sink); err != nil {
		t.Fatalf("Fetch() = %v", err)
	}
	checkBaselineJPEG(t, fileSinkBytes(t, sink))
	for _, r := range has.requests() {
		if r.TLS == nil || r.TLS.ServerName != "example.com" || r.Host != "example.com" {
			t.Errorf("%s: SNI, Host = %v, %q, want example.com twice", r.Method, r.TLS, r.Host)
		}
	}

	// With the system roots, the test certificate is not trusted.
	o, _ = newOriginForTest(t, clusters, originOptions{})
	_, err := o.Fetch(context.Background(), probedPath, validators{}, newFileSink(t))
	if !errors.Is(err, errOriginFailed) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Fetch() with system roots = %v, want errOriginFailed about the certificate", err)
	}
}

func TestFetchLocalDirectory(t *testing.T) {
	body := baselineJPEG(t)
	root := t.TempDir()
	outside := t.TempDir()
	write := func(dir, name string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(root, "img/a b/été.jpg")
	write(outside, "secret.jpg")
	err := os.Symlink(filepath.Join(outside, "secret.jpg"), filepath.Join(root, "link.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	mod := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	os.Chtimes(filepath.Join(root, "img/a b/été.jpg"), mod, mod)

	for _, form := range []string{root, "file://" + root} {
		t.Run(form, func(t *testing.T) {
			clusters := map[string]*ClusterConfig{"c": clusterOf(form)}
			o, _ := newOriginForTest(t, clusters, originOptions{})
			sink := newFileSink(t)
			resp, err := o.Fetch(context.Background(), "/img/a b/été.jpg", validators{}, sink)
			if err != nil {
				t.Fatalf("Fetch() = %v", err)
			}
			checkBaselineJPEG(t, fileSinkBytes(t, sink))
			h := resp.Header
			if h.Get("Last-Modified") != mod.Format(http.TimeFormat) ||
				h.Get("Content-Type") != "image/jpeg" || h.Get("ETag") == "" {
				t.Errorf("Fetch().Header = %v, want Last-Modified %s, image/jpeg, an ETag", h,
					mod.Format(http.TimeFormat))
			}
			conds := []validators{{ETag: h.Get("ETag")}, {LastModified: h.Get("Last-Modified")}}
			for _, v := range conds {
				resp, err := o.Fetch(context.Background(), "/img/a b/été.jpg", v, newFileSink(t))
				if err != nil || resp.Status != http.StatusNotModified {
					t.Errorf("Fetch(%+v) = %v, %v, want 304", v, resp, err)
				}
			}
			missing := []string{"/missing.jpg", "/img", "/link.jpg", "/img/a b/été.jpg/x"}
			for _, p := range missing {
				_, err := o.Fetch(context.Background(), p, validators{}, newFileSink(t))
				if !errors.Is(err, errNotFound) {
					t.Errorf("Fetch(%s) = %v, want errNotFound", p, err)
				}
			}
			_, err = o.Fetch(context.Background(), "/img/../../x", validators{}, newFileSink(t))
			if !errors.Is(err, errBadOriginPath) {
				t.Errorf("Fetch(/img/../../x) = %v, want errBadOriginPath", err)
			}
		})
	}
}

func TestFetchLocalAndHTTPClusters(t *testing.T) {
	body := baselineJPEG(t)
	has := newNodeServer(t, memFilesHandler(map[string][]byte{probedPath: body}))
	o, _ := newOriginForTest(t, map[string]*ClusterConfig{
		"disk": clusterOf(t.TempDir()), "web": clusterOf(has.addr()),
	}, originOptions{MaxBodyBytes: 100000})
	sink := newFileSink(t)
	resp, err := o.Fetch(context.Background(), probedPath, validators{}, sink)
	if err != nil || resp.Cluster != "web" {
		t.Fatalf("Fetch() = %+v, %v, want it from cluster web", resp, err)
	}
	checkBaselineJPEG(t, fileSinkBytes(t, sink))
}

func TestFetchClientGoesAway(t *testing.T) {
	hang, started := hangingHandler(t)
	slow := newNodeServer(t, hang)
	other := newNodeServer(t, memFilesHandler(nil))
	o, clk := newOriginForTest(t, map[string]*ClusterConfig{
		"slow": clusterOf(slow.addr()), "other": clusterOf(other.addr()),
	}, originOptions{})

	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err := o.Fetch(ctx, probedPath, validators{}, newFileSink(t))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch() = %v, want context.Canceled", err)
	}
	if !nodeNamed(t, o, "slow", slow.addr()).health.up(clk.now()) {
		t.Errorf("node is backing off after the client left, want it up")
	}
}

func TestFetchRemembersLocationUntilItMoves(t *testing.T) {
	body := baselineJPEG(t)
	files1 := map[string][]byte{probedPath: body}
	var mu sync.Mutex
	s1 := newNodeServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := memFilesHandler(files1)
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	s2 := newNodeServer(t, memFilesHandler(map[string][]byte{probedPath: body}))
	o, _ := newOriginForTest(t, map[string]*ClusterConfig{
		"c1": clusterOf(s1.addr()), "c2": clusterOf(s2.addr()),
	}, originOptions{})
	// c1 must win the first round: hold c2 out by making it down.
	nodeNamed(t, o, "c2", s2.addr()).health.markDown(o.now(), false, time.Hour, time.Hour)
	resp, err := o.Fetch(context.Background(), probedPath, validators{}, newFileSink(t))
	if err != nil || resp.Cluster != "c1" {
		t.Fatalf("Fetch() = %+v, %v, want it from c1", resp, err)
	}
	nodeNamed(t, o, "c2", s2.addr()).health.markUp()

	mu.Lock()
	files1 = map[string][]byte{} // the file moves to c2
	mu.Unlock()
	sink := newFileSink(t)
	resp, err = o.Fetch(context.Background(), probedPath, validators{}, sink)
	if err != nil || resp.Cluster != "c2" {
		t.Fatalf("Fetch() after the move = %+v, %v, want it from c2", resp, err)
	}
	checkBaselineJPEG(t, fileSinkBytes(t, sink))
	// c1: a HEAD and a GET, then the remembered GET (a 404); c2 the new round.
	g1, h2, g2 := s1.gets.Load(), s2.heads.Load(), s2.gets.Load()
	if g1 != 2 || h2 != 1 || g2 != 1 {
		t.Errorf("c1 GETs, c2 HEADs, c2 GETs = %d, %d, %d, want 2, 1, 1", g1, h2, g2)
	}
}

func TestFetchHangingGETTriesSibling(t *testing.T) {
	body := baselineJPEG(t)
	files := memFilesHandler(map[string][]byte{probedPath: body})
	hang, started := hangingHandler(t)
	// slow wins the probe and never answers the GET; good serves it.
	slow := newNodeServer(t, headOrGet(files, hang))
	good := newNodeServer(t, headOrGet(statusOnly(http.StatusServiceUnavailable), files))
	other := newNodeServer(t, memFilesHandler(nil))
	o, clk := newOriginForTest(t, map[string]*ClusterConfig{
		"c1": clusterOf(slow.addr(), good.addr()), "c2": clusterOf(other.addr()),
	}, originOptions{FetchTimeout: 300 * time.Millisecond})

	for round := 1; round <= 2; round++ {
		sink := newFileSink(t)
		resp, err := o.Fetch(context.Background(), probedPath, validators{}, sink)
		if err != nil || resp.Node != good.addr() {
			t.Fatalf("round %d: Fetch() = %+v, %v, want it from %s", round, resp, err, good.addr())
		}
		checkBaselineJPEG(t, fileSinkBytes(t, sink))
	}
	awaitHang(t, started)
	// The second round went straight to the node that served the first.
	if got := slow.gets.Load(); got != 1 {
		t.Errorf("GETs on the hanging node = %d, want 1", got)
	}
	// It still answers HEAD, so the liveness check after the timeout brings
	// it back: one hanging path does not take a node out of service.
	n := nodeNamed(t, o, "c1", slow.addr())
	waitUntil(t, func() bool { return n.health.up(clk.now()) })
}

// unreadableSink is a sink that cannot be read back, unlike an *os.File.
type unreadableSink struct{ f *os.File }

func (s unreadableSink) Write(p []byte) (int, error)           { return s.f.Write(p) }
func (s unreadableSink) Truncate(n int64) error                { return s.f.Truncate(n) }
func (s unreadableSink) Seek(off int64, wh int) (int64, error) { return s.f.Seek(off, wh) }

func TestFetchCoalescesWithUnreadableSinks(t *testing.T) {
	const callers = 5
	body := baselineJPEG(t)
	gate := make(chan struct{})
	files := memFilesHandler(map[string][]byte{probedPath: body})
	has := newNodeServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			<-gate
		}
		files.ServeHTTP(w, r)
	}))
	hasNot := newNodeServer(t, memFilesHandler(nil))
	o, _ := newOriginForTest(t, map[string]*ClusterConfig{
		"a": clusterOf(has.addr()), "b": clusterOf(hasNot.addr()),
	}, originOptions{})

	sinks := make([]*os.File, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		sinks[i] = newFileSink(t)
		wg.Go(func() {
			sink := unreadableSink{sinks[i]}
			_, errs[i] = o.Fetch(context.Background(), probedPath, validators{}, sink)
		})
	}
	waitUntil(t, func() bool { return o.flights.callers(probedPath, validators{}) == callers })
	close(gate)
	wg.Wait()

	for i := range callers {
		if errs[i] != nil || !bytes.Equal(fileSinkBytes(t, sinks[i]), body) {
			t.Fatalf("Fetch() #%d = %v, or its sink does not hold the file", i, errs[i])
		}
	}
	// One probe round; each caller then needs its own GET.
	if h, g := has.heads.Load(), has.gets.Load(); h != 1 || g != callers {
		t.Errorf("HEADs, GETs = %d, %d, want 1, %d", h, g, callers)
	}
}

func TestFetchFollowersOutliveLeavingLeader(t *testing.T) {
	const followers = 3
	body := baselineJPEG(t)
	gate := make(chan struct{})
	arrived := make(chan struct{}, 10)
	files := memFilesHandler(map[string][]byte{probedPath: body})
	has := newNodeServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			arrived <- struct{}{}
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		files.ServeHTTP(w, r)
	}))
	hasNot := newNodeServer(t, memFilesHandler(nil))
	o, _ := newOriginForTest(t, map[string]*ClusterConfig{
		"a": clusterOf(has.addr()), "b": clusterOf(hasNot.addr()),
	}, originOptions{})
	joined := func(n int) func() bool {
		return func() bool { return o.flights.callers(probedPath, validators{}) == n }
	}

	ctx, cancel := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := o.Fetch(ctx, probedPath, validators{}, newFileSink(t))
		leaderErr <- err
	}()
	awaitHang(t, arrived)
	sinks := make([]*os.File, followers)
	errs := make([]error, followers)
	var wg sync.WaitGroup
	for i := range followers {
		sinks[i] = newFileSink(t)
		wg.Go(func() {
			_, errs[i] = o.Fetch(context.Background(), probedPath, validators{}, sinks[i])
		})
	}
	waitUntil(t, joined(followers+1))
	cancel()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader's Fetch() = %v, want context.Canceled", err)
	}
	waitUntil(t, joined(followers)) // they start over together
	close(gate)
	wg.Wait()

	for i := range followers {
		if errs[i] != nil || !bytes.Equal(fileSinkBytes(t, sinks[i]), body) {
			t.Fatalf("follower %d: Fetch() = %v, or its sink does not hold the file", i, errs[i])
		}
	}
	if h, g := has.heads.Load(), has.gets.Load(); h != 2 || g != 1 {
		t.Errorf("HEADs, GETs = %d, %d, want 2 (one per round), 1", h, g)
	}
}
