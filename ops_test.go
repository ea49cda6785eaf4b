package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the handler and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// opsServer builds a server for cfg changes, logging JSON into a buffer,
// with metrics and a running cleaner.
func opsServer(t testing.TB, adjust func(*Config)) (*server, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	cfg, _, err := parseConfig([]byte(defaultConfigTOML), func(c *Config) {
		c.CacheDir = dir
		c.NotFoundSource = filepath.Join(dir, "404.jpeg")
		adjust(c)
	})
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := newServer(cfg, log)
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	s.metrics = newMetrics(func() *Cleaner { return s.cleaner })
	stop := startCleaner(context.Background(), cfg, s, log)
	t.Cleanup(func() { stop(); s.Close() })
	return s, &logs
}

// serveOnce runs one request through the handler; the access log line is
// written by the time it returns.
func serveOnce(t testing.TB, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

// accessLines returns the "request" records of a JSON log.
func accessLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if rec["msg"] == "request" {
			out = append(out, rec)
		}
	}
	return out
}

func TestAccessLogLine(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/a.jpg", testJPEG(t, 40, 20), "ETag", `"a"`)
	s, logs := opsServer(t, func(c *Config) {
		c.Origins["default"] = map[string]*ClusterConfig{"test": {IPs: []string{o.node()}}}
	})

	tests := []struct {
		target, method string
		status         int
		cache, origin  string
	}{
		{"/a.jpg/resize-20x.png", "GET", 200, "miss", o.node()},
		{"/a.jpg/resize-20x.png", "GET", 200, "hit", ""},
		{"/a.jpg", "HEAD", 200, "hit", ""},
		{"/nothing.jpg", "GET", 404, "", o.node()},
		{"/no/route", "GET", 404, "", ""},
	}
	for i, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			rec := serveOnce(t, s, tt.method, tt.target)
			lines := accessLines(t, logs.String())
			if len(lines) != i+1 {
				t.Fatalf("%d access lines after %d requests, want one each:\n%s",
					len(lines), i+1, logs)
			}
			l := lines[i]
			want := map[string]any{"method": tt.method, "path": tt.target,
				"status": float64(tt.status), "bytes": float64(rec.Body.Len())}
			for k, v := range want {
				if l[k] != v {
					t.Errorf("log %s = %v, want %v", k, l[k], v)
				}
			}
			if d, ok := l["duration"].(float64); !ok || d <= 0 {
				t.Errorf("log duration = %v, want a positive number", l["duration"])
			}
			if got, _ := l["cache"].(string); got != tt.cache {
				t.Errorf("log cache = %q, want %q", got, tt.cache)
			}
			if got, _ := l["origin"].(string); got != tt.origin {
				t.Errorf("log origin = %q, want %q", got, tt.origin)
			}
		})
	}
	if !strings.Contains(logs.String(), `"msg":"route matched"`) {
		t.Errorf("debug log does not explain routing:\n%s", logs)
	}
}

func TestMetricsAfterTraffic(t *testing.T) {
	has, lacks := newTestOrigin(t), newTestOrigin(t)
	has.put("/a.jpg", testJPEG(t, 40, 20), "ETag", `"a"`)
	s, _ := opsServer(t, func(c *Config) {
		c.Origins["default"] = map[string]*ClusterConfig{
			"a": {IPs: []string{has.node()}},
			"b": {IPs: []string{lacks.node()}},
		}
	})
	for _, target := range []string{"/a.jpg/resize-20x.webp", "/a.jpg/resize-20x.webp",
		"/a.jpg", "/missing.jpg", "/no/route"} {
		serveOnce(t, s, "GET", target)
	}
	admin := httptest.NewServer(newAdminHandler(func() *server { return s }, s.metrics))
	defer admin.Close()
	resp, err := http.Get(admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)

	for _, want := range []string{
		`katana_requests_total{action="resize",route="routing[0].resize",status="200"} 2`,
		`katana_requests_total{action="proxy",route="routing[0].proxy",status="200"} 1`,
		`katana_requests_total{action="proxy",route="routing[0].proxy",status="404"} 1`,
		`katana_requests_total{action="none",route="none",status="404"} 1`,
		`katana_cache_requests_total{cache="miss"} 1`,
		`katana_cache_requests_total{cache="hit"} 2`,
		`katana_origin_probe_seconds_count{cluster="a",origin="default"}`,
		`katana_origin_probe_seconds_count{cluster="b",origin="default"}`,
		`katana_origin_fetch_seconds_count{cluster="a",origin="default"} 1`,
		`katana_image_seconds_count{format="webp",stage="transform"} 1`,
		`katana_image_jobs_in_flight 0`,
		`katana_request_duration_seconds_count{action="resize"} 2`,
		`katana_cleaner_evictions_total 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	m := regexp.MustCompile(`(?m)^katana_cache_bytes (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("/metrics lacks katana_cache_bytes")
	}
	if v, _ := strconv.ParseFloat(m[1], 64); v <= 0 {
		t.Errorf("katana_cache_bytes = %s, want the bytes stored", m[1])
	}
}

func TestAdminHealthAndReady(t *testing.T) {
	s, _ := opsServer(t, func(*Config) {})
	var cur *server
	admin := httptest.NewServer(newAdminHandler(func() *server { return cur }, s.metrics))
	defer admin.Close()
	get := func(path string) int {
		resp, err := http.Get(admin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name, path string
		cur        *server
		want       int
	}{
		{"alive without config", "/healthz", nil, 200},
		{"not ready without config", "/readyz", nil, 503},
		{"ready", "/readyz", s, 200},
		{"pprof", "/debug/pprof/", s, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur = tt.cur
			if got := get(tt.path); got != tt.want {
				t.Errorf("GET %s = %d, want %d", tt.path, got, tt.want)
			}
		})
	}
	t.Run("not ready when cache_dir takes no file", func(t *testing.T) {
		// A file where the cache's temporary directory belongs fails even
		// for root, whom permissions do not stop.
		cur = s
		tmp := s.cache.tmpDir()
		os.RemoveAll(tmp)
		os.WriteFile(tmp, nil, 0o644)
		defer os.Remove(tmp)
		if got := get("/readyz"); got != 503 {
			t.Errorf("GET /readyz with an unwritable cache = %d, want 503", got)
		}
	})
}

// purgeCall posts a purge and decodes the answer.
func purgeCall(t *testing.T, url, path string) (int, purgeResult) {
	t.Helper()
	resp, err := http.Post(url+"/purge?path="+path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res purgeResult
	json.NewDecoder(resp.Body).Decode(&res)
	return resp.StatusCode, res
}

func TestPurgeRemovesSourceAndVariants(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/img/cat.jpg", testJPEG(t, 40, 20), "ETag", `"cat"`)
	o.put("/img/cat-2.jpg", testJPEG(t, 40, 20), "ETag", `"cat2"`)
	s, _ := opsServer(t, func(c *Config) {
		c.Origins["default"] = map[string]*ClusterConfig{"test": {IPs: []string{o.node()}}}
	})
	for _, target := range []string{"/img/cat.jpg", "/img/cat.jpg/resize-20x.webp",
		"/img/cat.jpg/resize-10x10-f-q60.png", "/img/cat.jpg/resize-20x-3.webp",
		"/img/cat-2.jpg/resize-20x.webp"} {
		if rec := serveOnce(t, s, "GET", target); rec.Code != 200 {
			t.Fatalf("GET %s = %d", target, rec.Code)
		}
	}
	admin := httptest.NewServer(newAdminHandler(func() *server { return s }, s.metrics))
	defer admin.Close()

	status, res := purgeCall(t, admin.URL, "/img/cat.jpg")
	if status != 200 {
		t.Fatalf("POST /purge = %d, want 200", status)
	}
	want := []string{"img/cat/source.jpg", "img/cat-10x10-1-q60.png",
		"img/cat-20x0-0-q75-3.webp", "img/cat-20x0-0-q75.webp"}
	got := slices.Clone(res.Removed)
	slices.Sort(got[1:])
	if !slices.Equal(got, want) {
		t.Errorf("purge removed %q, want %q", res.Removed, want)
	}
	left := cacheFiles(t, s.cache.dir)
	for _, rel := range want {
		for _, f := range []string{rel, rel + metaSuffix} {
			if slices.Contains(left, f) {
				t.Errorf("%s is still in the cache after the purge", f)
			}
		}
	}
	for _, keep := range []string{"img/cat-2/source.jpg", "img/cat-2-20x0-0-q75.webp"} {
		if !slices.Contains(left, keep) {
			t.Errorf("purge of cat.jpg removed %s, a file of cat-2.jpg", keep)
		}
	}
	// The source's directory went with its last file; img holds cat-2's.
	if _, err := os.Stat(filepath.Join(s.cache.dir, "img", "cat")); !os.IsNotExist(err) {
		t.Errorf("img/cat after the purge: %v, want it gone", err)
	}
	if _, err := os.Stat(filepath.Join(s.cache.dir, "img")); err != nil {
		t.Errorf("img after the purge: %v, want it kept", err)
	}

	before := o.count("GET", "/img/cat.jpg")
	serveOnce(t, s, "GET", "/img/cat.jpg/resize-20x.webp")
	if got := o.count("GET", "/img/cat.jpg"); got != before+1 {
		t.Errorf("origin GETs after purge = %d, want %d: the source was not fetched again",
			got, before+1)
	}
	// A purge by a variant's URL finds the same source.
	if _, res := purgeCall(t, admin.URL, "/img/cat.jpg/resize-1x.png"); len(res.Removed) != 2 {
		t.Errorf("purge by a variant URL removed %q, want the source and the webp", res.Removed)
	}
}

func TestPurgeErrors(t *testing.T) {
	s, _ := opsServer(t, func(*Config) {})
	admin := httptest.NewServer(newAdminHandler(func() *server { return s }, s.metrics))
	defer admin.Close()
	tests := []struct {
		name, method, target string
		want                 int
	}{
		{"no path", "POST", "/purge", 400},
		{"no route", "POST", "/purge?path=/no/route", 404},
		{"traversal", "POST", "/purge?path=/../x.jpg", 400},
		{"nothing cached", "POST", "/purge?path=/x.jpg", 200},
		{"GET", "GET", "/purge?path=/x.jpg", 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, admin.URL+tt.target, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s %s = %d, want %d", tt.method, tt.target, resp.StatusCode, tt.want)
			}
		})
	}
}

// writeConfig writes a config serving the photos directory under prefix.
func writeConfig(t *testing.T, path, prefix, photos string) {
	t.Helper()
	conf := `cache_dir = "` + filepath.Join(filepath.Dir(path), "cache") + `"
admin_listen = ""
[origins.default.local]
ips = ["` + photos + `"]
[[routing]]
[routing.proxy]
url_re = '/` + prefix + `/(?P<name>[a-z]+)\.jpg'
origin_tmpl = "/{name}.jpg"
cache_path = "` + prefix + `/{name}.jpg"
`
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// photoDir makes an origin directory holding a.jpg.
func photoDir(t *testing.T) (dir string, photo []byte) {
	t.Helper()
	dir = t.TempDir()
	photo = testJPEG(t, 16, 8)
	if err := os.WriteFile(filepath.Join(dir, "a.jpg"), photo, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, photo
}

func TestReloadKeepsOldConfigWhenNewIsBad(t *testing.T) {
	photos, photo := photoDir(t)
	path := filepath.Join(t.TempDir(), "katana.toml")
	writeConfig(t, path, "one", photos)
	var logs syncBuffer
	d := newDaemon(context.Background(), path, nil, &logs)
	g, err := d.load()
	if err != nil {
		t.Fatal(err)
	}
	d.activate(g)
	defer d.close()
	get := func(target string) int {
		rec := serveOnce(t, &d.handler, "GET", target)
		if rec.Code == 200 && !bytes.Equal(rec.Body.Bytes(), photo) {
			t.Errorf("GET %s: body differs from the photo", target)
		}
		return rec.Code
	}
	if got := get("/one/a.jpg"); got != 200 {
		t.Fatalf("GET /one/a.jpg = %d before any reload", got)
	}

	bad := []string{"thumb_max_width = 0\n", "[[routing]]\n[routing.proxy]\nurl_re = '(' \n"}
	for _, conf := range bad {
		os.WriteFile(path, []byte(conf), 0o644)
		if err := d.reload(); err == nil {
			t.Fatalf("reload of %q succeeded", conf)
		}
		if got := get("/one/a.jpg"); got != 200 {
			t.Errorf("GET /one/a.jpg after a bad reload = %d, want 200 (old routes)", got)
		}
	}
	if !strings.Contains(logs.String(), "reload failed, keeping the running config") {
		t.Errorf("bad reload was not logged:\n%s", logs.String())
	}

	writeConfig(t, path, "two", photos)
	if err := d.reload(); err != nil {
		t.Fatalf("reload of a good config: %v", err)
	}
	if got := get("/two/a.jpg"); got != 200 {
		t.Errorf("GET /two/a.jpg after reload = %d, want 200", got)
	}
	if got := get("/one/a.jpg"); got != 404 {
		t.Errorf("GET /one/a.jpg after reload = %d, want 404 (old route gone)", got)
	}
	<-g.drained // the first generation was retired and has no request left
}

func TestReloadDrainsOldServerFirst(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/slow.jpg", testJPEG(t, 16, 8))
	arrived, release := make(chan struct{}), make(chan struct{})
	o.hold = func() { arrived <- struct{}{}; <-release }
	dir := t.TempDir()
	path := filepath.Join(dir, "katana.toml")
	os.WriteFile(path, []byte("cache_dir = '"+dir+"/cache'\n[origins.default.o]\nips = ['"+
		o.node()+"']\n"), 0o644)
	d := newDaemon(context.Background(), path, nil, io.Discard)
	g, err := d.load()
	if err != nil {
		t.Fatal(err)
	}
	d.activate(g)
	defer d.close()
	srv := httptest.NewServer(&d.handler)
	defer srv.Close()

	done := make(chan int)
	go func() {
		resp, err := http.Get(srv.URL + "/slow.jpg")
		if err != nil {
			done <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-arrived
	if err := d.reload(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.drained:
		t.Fatal("old generation drained while a request was still in it")
	default:
	}
	o.mu.Lock()
	o.hold = nil
	o.mu.Unlock()
	close(release)
	if got := <-done; got != 200 {
		t.Errorf("in-flight request across a reload = %d, want 200", got)
	}
	<-g.drained
}

func TestLogFilesReopen(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "server.log")
	cfg := LoggingConfig{
		Loggers:  map[string]LoggerConfig{"katana.server": {Handlers: []string{"f"}}},
		Handlers: map[string]HandlerConfig{"f": {Class: "file", Filename: name}},
	}
	logs, err := newLogging(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	log := logs.logger("katana.server")
	log.Info("before rotation")
	if err := os.Rename(name, name+".1"); err != nil {
		t.Fatal(err)
	}
	if err := logs.Reopen(); err != nil {
		t.Fatal(err)
	}
	log.Info("after rotation")
	old, _ := os.ReadFile(name + ".1")
	cur, _ := os.ReadFile(name)
	if !strings.Contains(string(old), "before rotation") || strings.Contains(string(old), "after") {
		t.Errorf("rotated file = %q, want only the first line", old)
	}
	if !strings.Contains(string(cur), "after rotation") || strings.Contains(string(cur), "before") {
		t.Errorf("reopened file = %q, want only the second line", cur)
	}
}

func TestSdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Skipf("no unixgram sockets here: %v", err)
	}
	defer ln.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	if err := sdNotify("READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := ln.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Errorf("systemd got %q (%v), want READY=1", buf[:n], err)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Errorf("sdNotify outside systemd = %v, want nil", err)
	}
}

func TestVersionFlag(t *testing.T) {
	out, _, err := runApp(t, context.Background(), "--version")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{version, runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(out, want) {
			t.Errorf("--version = %q, lacks %q", out, want)
		}
	}
}

func TestStallConnWritesWholeBodies(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 3*stallChunk/16+7) // over 3 chunks
	file := filepath.Join(t.TempDir(), "big.bin")
	os.WriteFile(file, big, 0o644)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/file" {
			http.ServeFile(w, r, file) // sendfile through stallConn.ReadFrom
			return
		}
		w.Write(big) // stallConn.Write
	})}
	go srv.Serve(stallListener(ln, time.Minute))
	defer srv.Close()
	for _, path := range []string{"/file", "/write"} {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(body, big) {
			t.Errorf("GET %s: %d bytes (%v), want the %d bytes written", path, len(body), err, len(big))
		}
	}
}

func TestStallConnCutsStalledClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sl := stallListener(ln, 50*time.Millisecond)
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close() // never reads
	c, err := sl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Write(make([]byte, 32<<20)) // more than the socket buffers hold
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("write to a client that never reads = %v, want a deadline error", err)
	}
}

func TestOpsConfigKeys(t *testing.T) {
	tests := []struct {
		conf    string
		wantErr string // "" means valid
	}{
		{"admin_listen = ''", ""},
		{"admin_listen = '127.0.0.1:9999'", ""},
		{"admin_listen = 'localhost'", "admin_listen"},
		{"shutdown_grace = 'soon'", "shutdown_grace"},
		{"shutdown_grace = 0", ""},
		{"read_header_timeout = 0", "read_header_timeout"},
		{"idle_timeout = -1", "idle_timeout"},
		{"write_timeout = '2m'", ""},
	}
	for _, tt := range tests {
		t.Run(tt.conf, func(t *testing.T) {
			_, _, err := parseConfig([]byte(tt.conf), nil)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("parseConfig(%q) = %v, want no error", tt.conf, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("parseConfig(%q) = %v, want an error naming %s", tt.conf, err, tt.wantErr)
			}
		})
	}
	cfg := defaultConfig()
	if cfg.AdminListen != "127.0.0.1:9090" || cfg.ShutdownGrace.Duration != 10*time.Second {
		t.Errorf("defaults: admin_listen %q, shutdown_grace %v; want 127.0.0.1:9090, 10s",
			cfg.AdminListen, cfg.ShutdownGrace.Duration)
	}
}

func TestClosedDaemonAnswers503(t *testing.T) {
	photos, _ := photoDir(t)
	path := filepath.Join(t.TempDir(), "katana.toml")
	writeConfig(t, path, "one", photos)
	d := newDaemon(context.Background(), path, nil, io.Discard)
	g, err := d.load()
	if err != nil {
		t.Fatal(err)
	}
	d.activate(g)
	d.close()
	if rec := serveOnce(t, &d.handler, "GET", "/one/a.jpg"); rec.Code != 503 {
		t.Errorf("GET after close = %d, want 503", rec.Code)
	}
}

func TestAdminListenInUseFails(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	t.Chdir(t.TempDir())
	_, _, err = runApp(t, context.Background(), "--listen", "127.0.0.1:0",
		"--admin", busy.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "admin_listen") {
		t.Errorf("serving with admin_listen in use = %v, want an error naming admin_listen", err)
	}
}
