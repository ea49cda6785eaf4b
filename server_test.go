package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "image/gif"

	_ "github.com/gen2brain/webp"
)

// testOrigin is a real HTTP origin on 127.0.0.1 that serves files from
// memory and counts the requests it receives.
type testOrigin struct {
	*httptest.Server
	mu     sync.Mutex
	files  map[string]*originFile
	counts map[string]int // "GET /path" → requests
	hold   func()         // when set, GET waits on it before answering
}

type originFile struct {
	body   []byte
	header http.Header
	status int // 0 means 200
}

func newTestOrigin(t *testing.T) *testOrigin {
	t.Helper()
	o := &testOrigin{files: map[string]*originFile{}, counts: map[string]int{}}
	o.Server = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.Close)
	return o
}

// put serves body at path with header pairs ("ETag", `"x"`, ...).
func (o *testOrigin) put(path string, body []byte, header ...string) {
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	o.mu.Lock()
	o.files[path] = &originFile{body: body, header: h}
	o.mu.Unlock()
}

func (o *testOrigin) putStatus(path string, status int, body string) {
	o.mu.Lock()
	o.files[path] = &originFile{body: []byte(body), header: http.Header{}, status: status}
	o.mu.Unlock()
}

func (o *testOrigin) count(method, path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[method+" "+path]
}

func (o *testOrigin) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.counts {
		n += c
	}
	return n
}

// node is the origin's address as a config node.
func (o *testOrigin) node() string { return strings.TrimPrefix(o.URL, "http://") }

func (o *testOrigin) serve(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.counts[r.Method+" "+r.URL.Path]++
	f := o.files[r.URL.Path]
	hold := o.hold
	o.mu.Unlock()
	if f == nil {
		http.NotFound(w, r)
		return
	}
	if hold != nil && r.Method == http.MethodGet {
		hold()
	}
	for k, v := range f.header {
		w.Header()[k] = v
	}
	if f.status != 0 {
		w.WriteHeader(f.status)
		io.WriteString(w, string(f.body))
		return
	}
	if etag := f.header.Get("ETag"); etag != "" && r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(f.body)))
	if r.Method == http.MethodGet {
		w.Write(f.body)
	}
}

// testKatana is the real handler behind a real listener.
type testKatana struct {
	*httptest.Server
	s      *server
	dir    string
	active atomic.Int64 // requests inside the handler
	loop   *httpLoop    // serves in front of Server, as in the daemon
}

// Close closes the connections of the loop, then the server.
func (k *testKatana) Close() {
	k.loop.Close()
	k.Server.Close()
}

// defaultRoutes is the embedded default with the origin under test.
func newKatana(t *testing.T, o *testOrigin, adjust func(*Config)) *testKatana {
	t.Helper()
	return newKatanaTOML(t, defaultConfigTOML, func(c *Config) {
		if o != nil {
			c.Origins["default"] = map[string]*ClusterConfig{"test": {IPs: []string{o.node()}}}
		}
		if adjust != nil {
			adjust(c)
		}
	})
}

func newKatanaTOML(t *testing.T, conf string, adjust func(*Config)) *testKatana {
	t.Helper()
	dir := t.TempDir()
	cfg, _, err := parseConfig([]byte(conf), func(c *Config) {
		c.CacheDir = dir
		if adjust != nil {
			adjust(c)
		}
	})
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	s, err := newServer(cfg, slog.New(newTextHandler(io.Discard, slog.LevelInfo)))
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	k := &testKatana{s: s, dir: dir}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.active.Add(1)
		defer k.active.Add(-1)
		s.ServeHTTP(w, r)
	})
	k.Server = httptest.NewUnstartedServer(h)
	k.loop = newHTTPLoop(k.Server.Listener, h, k.Server.Config)
	k.Server.Listener = k.loop.Listener()
	k.Server.Start()
	t.Cleanup(func() { k.Close(); s.Close() })
	return k
}

// do sends a request and returns the response with its body read.
func (k *testKatana) do(t *testing.T, method, path string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, k.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, body
}

func (k *testKatana) get(t *testing.T, path string, header ...string) (*http.Response, []byte) {
	t.Helper()
	return k.do(t, http.MethodGet, path, header...)
}

// wantStatus fails unless resp has the status.
func wantStatus(t *testing.T, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s = %d (%q), want %d", resp.Request.Method, resp.Request.URL.Path,
			resp.StatusCode, truncate(body), status)
	}
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// decodeImage decodes a response body and checks its format.
// WebP goes through libwebp's RGBA path (decodeOutput): webp.Decode's own
// colour conversion is off by several levels.
func decodeImage(t *testing.T, body []byte, wantFormat string) image.Image {
	t.Helper()
	if format := sniffFormat(body); format != wantFormat {
		t.Fatalf("response format = %q, want %s", format, wantFormat)
	}
	return decodeOutput(t, body)
}

// halves makes a w×h image in two colours: a on the left half (the top
// half when top is set) and b on the other.
func halves(w, h int, top bool, a, b color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := a
			if !top && x >= w/2 || top && y >= h/2 {
				c = b
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

func encodeJPEG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// testJPEG makes a w×h JPEG: left half red, right half blue.
func testJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	return encodeJPEG(t, halves(w, h, false, color.NRGBA{220, 20, 20, 255}, color.NRGBA{20, 20, 220, 255}))
}

// testPNG makes a w×h PNG of one colour.
func testPNG(t *testing.T, w, h int, c color.NRGBA) []byte {
	t.Helper()
	return encodePNG(t, halves(w, h, false, c, c))
}

func readPhoto(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "photos", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// near reports whether two colours are within tol on every channel.
func nearRGB(c color.Color, r, g, b uint8, tol int) bool {
	cr, cg, cb, _ := c.RGBA()
	d := func(a uint32, b uint8) bool { return abs(int(a>>8)-int(b)) <= tol }
	return d(cr, r) && d(cg, g) && d(cb, b)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// cacheFiles lists the files under dir, relative, leaving out the cache's
// own reserved directory.
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() && rel == reservedDir {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	return files
}

func TestProxyMissThenHit(t *testing.T) {
	o := newTestOrigin(t)
	photo := readPhoto(t, "flower-1920x1080.jpg")
	o.put("/img/flower.jpg", photo, "ETag", `"v1"`, "Last-Modified", "Wed, 23 May 2012 14:03:44 GMT")
	k := newKatana(t, o, nil)

	for i, want := range []string{"miss", "hit"} {
		resp, body := k.get(t, "/img/flower.jpg")
		wantStatus(t, resp, body, http.StatusOK)
		if !bytes.Equal(body, photo) {
			t.Fatalf("request %d (%s): body differs from the origin's file", i, want)
		}
		if got := resp.Header.Get("Content-Type"); got != "image/jpeg" {
			t.Errorf("Content-Type = %q, want image/jpeg", got)
		}
		if got := resp.Header.Get("Content-Length"); got != fmt.Sprint(len(photo)) {
			t.Errorf("Content-Length = %q, want %d", got, len(photo))
		}
		if got := resp.Header.Get("ETag"); got != `"v1"` {
			t.Errorf("ETag = %q, want the origin's", got)
		}
		if got := resp.Header.Get("Last-Modified"); got != "Wed, 23 May 2012 14:03:44 GMT" {
			t.Errorf("Last-Modified = %q", got)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
		}
	}
	if got := o.count("GET", "/img/flower.jpg"); got != 1 {
		t.Errorf("origin GETs = %d, want 1 (the second request is a hit)", got)
	}
	if !exists(filepath.Join(k.dir, "img/flower/source.jpg")) {
		t.Errorf("source not cached at img/flower/source.jpg; cache holds %v", cacheFiles(t, k.dir))
	}
}

func TestResizeOutputFormats(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/p/flower.jpg", readPhoto(t, "flower-1920x1080.jpg"))
	o.put("/p/alpha.png", readPhoto(t, "portrait-500-alpha.png"))
	k := newKatana(t, o, nil)

	tests := []struct {
		path, format, ctype string
		w, h                int
	}{
		{"/p/flower.jpg/resize-300x.jpeg", "jpeg", "image/jpeg", 300, 169},
		{"/p/flower.jpg/resize-300x.png", "png", "image/png", 300, 169},
		{"/p/flower.jpg/resize-300x.webp", "webp", "image/webp", 300, 169},
		{"/p/flower.jpg/resize-x100.jpeg", "jpeg", "image/jpeg", 178, 100},
		{"/p/flower.jpg/resize-300x300.jpeg", "jpeg", "image/jpeg", 300, 169},
		{"/p/flower.jpg/resize-300x300-f.webp", "webp", "image/webp", 300, 300},
		{"/p/flower.jpg/resize-200x100-f-q50.jpeg", "jpeg", "image/jpeg", 200, 100},
		{"/p/alpha.png/resize-100x.png", "png", "image/png", 100, 100},
		{"/p/alpha.png/resize-1000x.png", "png", "image/png", 500, 500}, // never enlarged
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := k.get(t, tt.path)
			wantStatus(t, resp, body, http.StatusOK)
			if got := resp.Header.Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type = %q, want %q", got, tt.ctype)
			}
			img := decodeImage(t, body, tt.format)
			if b := img.Bounds(); b.Dx() != tt.w || b.Dy() != tt.h {
				t.Errorf("size = %dx%d, want %dx%d", b.Dx(), b.Dy(), tt.w, tt.h)
			}
		})
	}
	if got := o.count("GET", "/p/flower.jpg"); got != 1 {
		t.Errorf("origin GETs of the source = %d, want 1 (variants share it)", got)
	}
}

func TestResizeSharesNormalisedVariant(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/a.jpg", testJPEG(t, 64, 32))
	k := newKatana(t, o, func(c *Config) { c.ThumbMaxWidth = 40 })

	for _, p := range []string{"/a.jpg/resize-40x.png", "/a.jpg/resize-5000x.png", "/a.jpg/resize-40x-q75.png"} {
		resp, body := k.get(t, p)
		wantStatus(t, resp, body, http.StatusOK)
		if b := decodeImage(t, body, "png").Bounds(); b.Dx() != 32 {
			// 40 clamps to thumb_max_width 40, and a 64-wide source shrinks to fit.
			if b.Dx() != 40 {
				t.Errorf("%s: width = %d, want 40", p, b.Dx())
			}
		}
	}
	if got := k.s.stats.resizes.Load(); got != 1 {
		t.Errorf("resizes = %d, want 1: the three URLs normalise to one variant", got)
	}
	if !exists(filepath.Join(k.dir, "a-40x0-0-q75.png")) {
		t.Errorf("variant not at a-40x0-0-q75.png; cache holds %v", cacheFiles(t, k.dir))
	}
}

func TestNotFound(t *testing.T) {
	o := newTestOrigin(t)
	k := newKatana(t, o, nil)
	for _, p := range []string{"/missing.jpg", "/missing.jpg/resize-100x.webp", "/no-route.txt"} {
		resp, body := k.get(t, p)
		wantStatus(t, resp, body, http.StatusNotFound)
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control = %q, want no-store", p, got)
		}
	}
	if files := cacheFiles(t, k.dir); len(files) != 0 {
		t.Errorf("cache holds %v after 404s, want nothing", files)
	}
	entries, _ := os.ReadDir(k.dir)
	for _, e := range entries {
		if e.Name() != reservedDir {
			t.Errorf("404 left %s in the cache directory", e.Name())
		}
	}
}

func TestPlaceholder(t *testing.T) {
	o := newTestOrigin(t)
	ph := filepath.Join(t.TempDir(), "404.png")
	if err := os.WriteFile(ph, testPNG(t, 80, 40, color.NRGBA{0, 200, 0, 255}), 0o644); err != nil {
		t.Fatal(err)
	}
	k := newKatana(t, o, func(c *Config) {
		c.NotFoundAs200 = true
		c.NotFoundSource = ph
	})

	resp, body := k.get(t, "/gone.png")
	wantStatus(t, resp, body, http.StatusOK)
	if b := decodeImage(t, body, "png").Bounds(); b.Dx() != 80 || b.Dy() != 40 {
		t.Errorf("proxy placeholder size = %v, want 80x40", b)
	}

	resp, body = k.get(t, "/gone.png/resize-40x.webp")
	wantStatus(t, resp, body, http.StatusOK)
	img := decodeImage(t, body, "webp")
	if b := img.Bounds(); b.Dx() != 40 || b.Dy() != 20 {
		t.Errorf("resized placeholder size = %v, want 40x20", b)
	}
	if c := img.At(20, 10); !nearRGB(c, 0, 200, 0, 20) { // lossy WebP at q75
		t.Errorf("resized placeholder colour = %v, want green", c)
	}
	if got := resp.Header.Get("Cache-Control"); got != "max-age=60" {
		t.Errorf("Cache-Control = %q, want a short max-age=60", got)
	}
	if got := resp.Header.Get("ETag"); got != "" {
		t.Errorf("placeholder ETag = %q, want none", got)
	}
	if exists(filepath.Join(k.dir, "gone-40x0-0-q75.webp")) {
		t.Error("placeholder written at the real variant's path")
	}

	// Once the origin has the image, and the brief memory of its absence
	// has passed, the real one is served.
	o.put("/gone.png", testPNG(t, 60, 60, color.NRGBA{200, 0, 0, 255}))
	for _, org := range k.s.origins {
		org.memo.forget("/gone.png")
	}
	resp, body = k.get(t, "/gone.png/resize-40x.webp")
	wantStatus(t, resp, body, http.StatusOK)
	if c := decodeImage(t, body, "webp").At(20, 20); !nearRGB(c, 200, 0, 0, 20) {
		t.Errorf("after the origin got the file, colour = %v, want red", c)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/a.jpg", testJPEG(t, 8, 8))
	k := newKatana(t, o, nil)
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		resp, body := k.do(t, m, "/a.jpg")
		wantStatus(t, resp, body, http.StatusMethodNotAllowed)
		if got := resp.Header.Get("Allow"); got != "GET, HEAD" {
			t.Errorf("%s: Allow = %q, want GET, HEAD", m, got)
		}
	}
	if n := o.total(); n != 0 {
		t.Errorf("origin saw %d requests, want 0", n)
	}
}

func TestTraversalRejected(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/a.jpg", testJPEG(t, 8, 8))
	k := newKatana(t, o, nil)
	paths := []string{
		"/../../etc/passwd.jpg",
		"/a/../../../x.jpg",
		"/img/..%2f..%2fx.jpg",
		"/img%5c..%5cx.jpg",
		"/a%00.jpg",
		"/a\x01b.jpg",
		"/%ff%fe.jpg",
		"/../x.jpg/resize-10x.png",
		"/.katana/tmp/x.jpg",
		"/x.jpg/resize-10x.png.META/a.png",
	}
	for _, p := range paths {
		if got := rawGet(t, k.Listener.Addr().String(), p); got != http.StatusBadRequest {
			t.Errorf("GET %q = %d, want 400", p, got)
		}
	}
	if n := o.total(); n != 0 {
		t.Errorf("origin saw %d requests, want 0", n)
	}
	if files := cacheFiles(t, filepath.Dir(k.dir)); len(files) != 0 {
		t.Errorf("files written around the cache: %v", files)
	}
}

func TestLongPath(t *testing.T) {
	k := newKatana(t, newTestOrigin(t), nil)
	resp, body := k.get(t, "/"+strings.Repeat("a", 3000)+".jpg")
	wantStatus(t, resp, body, http.StatusRequestURITooLong)
}

func TestConcurrentMissesCoalesce(t *testing.T) {
	const n = 20
	for _, p := range []string{"/c.jpg", "/c.jpg/resize-50x.webp"} {
		t.Run(p, func(t *testing.T) {
			o := newTestOrigin(t)
			o.put("/c.jpg", testJPEG(t, 200, 100))
			k := newKatana(t, o, nil)
			// The origin answers only once all n requests are inside Katana.
			o.hold = func() {
				for i := 0; i < 500 && k.active.Load() < n; i++ {
					time.Sleep(10 * time.Millisecond)
				}
			}
			var wg sync.WaitGroup
			bodies := make([][]byte, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, body := k.get(t, p)
					if resp.StatusCode != http.StatusOK {
						t.Errorf("request %d = %d", i, resp.StatusCode)
					}
					bodies[i] = body
				}()
			}
			wg.Wait()
			if got := o.count("GET", "/c.jpg"); got != 1 {
				t.Errorf("origin GETs = %d, want 1", got)
			}
			if strings.Contains(p, "resize") {
				if got := k.s.stats.resizes.Load(); got != 1 {
					t.Errorf("resizes = %d, want 1", got)
				}
			}
			for i := range bodies {
				if !bytes.Equal(bodies[i], bodies[0]) || len(bodies[0]) == 0 {
					t.Fatalf("response %d differs from response 0", i)
				}
			}
		})
	}
}

func TestConditionalRequests(t *testing.T) {
	o := newTestOrigin(t)
	lm := "Wed, 23 May 2012 14:03:44 GMT"
	o.put("/c.jpg", testJPEG(t, 64, 64), "ETag", `"abc"`, "Last-Modified", lm)
	k := newKatana(t, o, nil)
	resp, body := k.get(t, "/c.jpg/resize-32x.jpeg")
	wantStatus(t, resp, body, http.StatusOK)
	variantETag := resp.Header.Get("ETag")
	if variantETag == "" || variantETag == `"abc"` {
		t.Fatalf("variant ETag = %q, want its own", variantETag)
	}

	tests := []struct {
		name   string
		path   string
		header []string
		want   int
	}{
		{"inm exact", "/c.jpg", []string{"If-None-Match", `"abc"`}, 304},
		{"inm weak", "/c.jpg", []string{"If-None-Match", `W/"abc"`}, 304},
		{"inm list", "/c.jpg", []string{"If-None-Match", `"x", "abc"`}, 304},
		{"inm star", "/c.jpg", []string{"If-None-Match", `*`}, 304},
		{"inm other", "/c.jpg", []string{"If-None-Match", `"zzz"`}, 200},
		{"ims equal", "/c.jpg", []string{"If-Modified-Since", lm}, 304},
		{"ims older", "/c.jpg", []string{"If-Modified-Since", "Tue, 22 May 2012 14:03:44 GMT"}, 200},
		{"ims garbage", "/c.jpg", []string{"If-Modified-Since", "yesterday"}, 200},
		{"inm wins over ims", "/c.jpg", []string{"If-None-Match", `"zzz"`, "If-Modified-Since", lm}, 200},
		{"variant inm", "/c.jpg/resize-32x.jpeg", []string{"If-None-Match", variantETag}, 304},
		{"variant source etag", "/c.jpg/resize-32x.jpeg", []string{"If-None-Match", `"abc"`}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := k.get(t, tt.path, tt.header...)
			wantStatus(t, resp, body, tt.want)
			if tt.want == 304 {
				if len(body) != 0 {
					t.Errorf("304 has a %d-byte body", len(body))
				}
				if resp.Header.Get("ETag") == "" || resp.Header.Get("Cache-Control") == "" ||
					resp.Header.Get("Expires") == "" {
					t.Errorf("304 lacks ETag, Cache-Control or Expires: %v", resp.Header)
				}
			}
		})
	}
	if got := o.count("GET", "/c.jpg"); got != 1 {
		t.Errorf("origin GETs = %d, want 1", got)
	}
	if got := k.s.stats.resizes.Load(); got != 1 {
		t.Errorf("resizes = %d, want 1: conditionals on a known variant do no image work", got)
	}
}

func TestHeadAndRange(t *testing.T) {
	o := newTestOrigin(t)
	data := testJPEG(t, 64, 64)
	o.put("/r.jpg", data)
	k := newKatana(t, o, nil)

	resp, body := k.do(t, "HEAD", "/r.jpg")
	wantStatus(t, resp, body, http.StatusOK)
	if len(body) != 0 || resp.ContentLength != int64(len(data)) {
		t.Errorf("HEAD: body %d bytes, Content-Length %d; want 0 and %d",
			len(body), resp.ContentLength, len(data))
	}
	resp, body = k.get(t, "/r.jpg", "Range", "bytes=10-19")
	wantStatus(t, resp, body, http.StatusPartialContent)
	if !bytes.Equal(body, data[10:20]) {
		t.Errorf("Range body = %x, want %x", body, data[10:20])
	}
	if got, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes 10-19/%d", len(data)); got != want {
		t.Errorf("Content-Range = %q, want %q", got, want)
	}
	// A range past the end is an error, which keeps none of the file's
	// freshness: no cache may hold the 416 for the file's lifetime.
	resp, body = k.get(t, "/r.jpg", "Range", "bytes=999999-")
	wantStatus(t, resp, body, http.StatusRequestedRangeNotSatisfiable)
	for _, f := range []string{"Expires", "Age", "Cache-Control", "Etag"} {
		if v := resp.Header.Get(f); v != "" {
			t.Errorf("416 %s = %q, want none", f, v)
		}
	}
}

func TestCorruptOriginImage(t *testing.T) {
	o := newTestOrigin(t)
	good := testJPEG(t, 64, 64)
	o.put("/bad.jpg", good[:len(good)/3])
	o.put("/html.jpg", []byte("<html><body>not an image</body></html>"))
	k := newKatana(t, o, nil)

	resp, body := k.get(t, "/bad.jpg/resize-32x.png")
	if resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusOK {
		t.Fatalf("truncated JPEG = %d (%q), want 502 or a documented partial decode", resp.StatusCode, body)
	}
	if resp.StatusCode == http.StatusBadGateway {
		if !strings.Contains(string(body), "could not be decoded") {
			t.Errorf("502 body = %q, want a clear message", body)
		}
		if exists(filepath.Join(k.dir, "bad-32x0-0-q75.png")) {
			t.Error("a variant was cached for an undecodable source")
		}
	}

	resp, body = k.get(t, "/html.jpg/resize-32x.png")
	wantStatus(t, resp, body, http.StatusUnsupportedMediaType)
	if exists(filepath.Join(k.dir, "html-32x0-0-q75.png")) {
		t.Error("a variant was cached for a non-image source")
	}
}

func TestOriginErrorsNotCached(t *testing.T) {
	o := newTestOrigin(t)
	o.putStatus("/e500.jpg", http.StatusInternalServerError, "<h1>oops</h1>")
	o.putStatus("/e403.jpg", http.StatusForbidden, "<h1>forbidden</h1>")
	k := newKatana(t, o, nil)
	for _, p := range []string{"/e500.jpg", "/e403.jpg"} {
		resp, body := k.get(t, p)
		if resp.StatusCode < 400 {
			t.Errorf("%s = %d, want an error", p, resp.StatusCode)
		}
		if strings.Contains(string(body), "<h1>") {
			t.Errorf("%s: the origin's error page was served: %q", p, body)
		}
	}
	if files := cacheFiles(t, k.dir); len(files) != 0 {
		t.Errorf("cache holds %v after origin errors, want nothing", files)
	}
}

func TestTruncatedOriginBodyNotCached(t *testing.T) {
	origin := lyingOrigin(t, func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 5000\r\n\r\n")
		c.Write(testJPEG(t, 16, 16)[:200])
	})
	k := newKatana(t, nil, func(c *Config) {
		c.Origins["default"] = map[string]*ClusterConfig{"t": {IPs: []string{origin}}}
	})
	resp, body := k.get(t, "/t.jpg")
	wantStatus(t, resp, body, http.StatusBadGateway)
	if files := cacheFiles(t, k.dir); len(files) != 0 {
		t.Errorf("cache holds %v after a truncated body, want nothing", files)
	}
}

func TestQueryStringIgnored(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/q.jpg", testJPEG(t, 16, 16))
	k := newKatana(t, o, nil)
	for _, q := range []string{"?a=1", "?a=2", ""} {
		resp, body := k.get(t, "/q.jpg"+q)
		wantStatus(t, resp, body, http.StatusOK)
	}
	if got := o.count("GET", "/q.jpg"); got != 1 {
		t.Errorf("origin GETs = %d, want 1: query strings are not part of the key", got)
	}
}

func TestStaleServedWhenOriginFails(t *testing.T) {
	o := newTestOrigin(t)
	data := testJPEG(t, 16, 16)
	o.put("/s.jpg", data)
	k := newKatana(t, o, nil)
	resp, body := k.get(t, "/s.jpg")
	wantStatus(t, resp, body, http.StatusOK)

	o.putStatus("/s.jpg", http.StatusServiceUnavailable, "down")
	k.s.now = func() time.Time { return time.Now().Add(time.Hour) }
	resp, body = k.get(t, "/s.jpg")
	wantStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, data) {
		t.Error("stale copy differs from what was cached")
	}
}

func TestRevalidationWithOrigin304(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/v.jpg", testJPEG(t, 32, 32), "ETag", `"e1"`, "Cache-Control", "max-age=100")
	k := newKatana(t, o, nil)
	resp, body := k.get(t, "/v.jpg/resize-16x.png")
	wantStatus(t, resp, body, http.StatusOK)

	later := time.Now().Add(200 * time.Second)
	k.s.now = func() time.Time { return later }
	resp, body = k.get(t, "/v.jpg/resize-16x.png")
	wantStatus(t, resp, body, http.StatusOK)
	if got := o.count("GET", "/v.jpg") + o.count("HEAD", "/v.jpg"); got < 2 {
		t.Errorf("origin requests = %d, want a revalidation after expiry", got)
	}
	if got := k.s.stats.resizes.Load(); got != 1 {
		t.Errorf("resizes = %d, want 1: an unchanged source keeps its variants", got)
	}
	e := k.s.cache.lookup("v/source.jpg")
	if e == nil || !e.Stored.Equal(later) {
		t.Errorf("source entry after 304 = %+v, want Stored updated to %v", e, later)
	}
	// max(external 600, 100) from the revalidation.
	if got := resp.Header.Get("Cache-Control"); got != "max-age=600" {
		t.Errorf("Cache-Control = %q, want max-age=600", got)
	}
}

func TestLegacyMetaIsRead(t *testing.T) {
	o := newTestOrigin(t)
	k := newKatana(t, o, nil)
	data := testPNG(t, 4, 4, color.NRGBA{1, 2, 3, 255})
	dir := filepath.Join(k.dir, "old")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "source.png"), data, 0o644)
	meta := fmt.Sprintf(`C|%d|300|Wed, 23 May 2012 14:03:44 GMT|"with|pipe"`, time.Now().Unix())
	os.WriteFile(filepath.Join(dir, "source.png.META"), []byte(meta), 0o644)

	resp, body := k.get(t, "/old.png")
	wantStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, data) {
		t.Error("body differs from the legacy cache file")
	}
	if got := resp.Header.Get("ETag"); got != `"with|pipe"` {
		t.Errorf("ETag = %q, want the legacy one", got)
	}
	if got := resp.Header.Get("Content-Type"); got != "image/png" {
		t.Errorf("Content-Type = %q, want image/png", got)
	}
	if n := o.total(); n != 0 {
		t.Errorf("origin saw %d requests for a fresh legacy entry", n)
	}
}

func TestMismatchedSidecarIsAMiss(t *testing.T) {
	o := newTestOrigin(t)
	data := testJPEG(t, 16, 16)
	o.put("/m.jpg", data)
	k := newKatana(t, o, nil)
	k.get(t, "/m.jpg")
	// A crash between the data and sidecar renames leaves a pair that does
	// not match: simulate it by replacing the data file, and start again on
	// the same cache directory.
	os.WriteFile(filepath.Join(k.dir, "m/source.jpg"), []byte("partial"), 0o644)
	k = newKatana(t, o, func(c *Config) { c.CacheDir = k.dir })
	resp, body := k.get(t, "/m.jpg")
	wantStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, data) {
		t.Error("served a data file that does not match its sidecar")
	}
	if got := o.count("GET", "/m.jpg"); got != 2 {
		t.Errorf("origin GETs = %d, want 2", got)
	}
}

func TestAccelRedirect(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/x.jpg", testJPEG(t, 16, 16), "ETag", `"x"`)
	k := newKatana(t, o, func(c *Config) { c.AccelRedirect = true })
	resp, body := k.get(t, "/x.jpg/resize-8x.webp")
	wantStatus(t, resp, body, http.StatusOK)
	if got := resp.Header.Get("X-Accel-Redirect"); got != "/resized/x-8x0-0-q75.webp" {
		t.Errorf("X-Accel-Redirect = %q", got)
	}
	if len(body) != 0 || resp.Header.Get("Content-Type") != "image/webp" {
		t.Errorf("accel answer: %d-byte body, Content-Type %q", len(body), resp.Header.Get("Content-Type"))
	}
	resp, _ = k.do(t, "HEAD", "/x.jpg")
	if got := resp.Header.Get("X-Accel-Redirect"); got != "" {
		t.Errorf("HEAD got X-Accel-Redirect %q, want none (GET only)", got)
	}
	resp, body = k.get(t, "/x.jpg", "If-None-Match", `"x"`)
	wantStatus(t, resp, body, http.StatusNotModified)
}

func TestExternalExpiresOff(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/x.jpg", testJPEG(t, 8, 8), "Cache-Control", "max-age=30")
	k := newKatana(t, o, func(c *Config) { c.ExternalExpires = Duration{} })
	resp, body := k.get(t, "/x.jpg")
	wantStatus(t, resp, body, http.StatusOK)
	if got := resp.Header.Get("Cache-Control"); got != "max-age=30" {
		t.Errorf("Cache-Control = %q, want the origin's max-age=30", got)
	}
}

// rawGet sends a request line exactly as written, which net/http's client
// refuses to do for control characters, and returns the status.
func rawGet(t *testing.T, addr, target string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %q: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// newExampleKatana runs katana.toml.example with every origin pointed at o.
func newExampleKatana(t *testing.T, o *testOrigin, notFoundAs200 bool) *testKatana {
	t.Helper()
	ph := filepath.Join(t.TempDir(), "404.jpeg")
	os.WriteFile(ph, testJPEG(t, 100, 50), 0o644)
	return newKatanaTOML(t, string(readExample(t)), func(c *Config) {
		for name := range c.Origins {
			c.Origins[name] = map[string]*ClusterConfig{name: {IPs: []string{o.node()}}}
		}
		c.NotFoundAs200 = notFoundAs200
		c.NotFoundSource = ph
		c.OriginTimeout = Duration{Duration: time.Second}
	})
}

// The worked examples of the original (spec section 11), with the fixed
// behaviour where Katana fixes it.
func TestExampleE1ColdProxyHit(t *testing.T) {
	o := newTestOrigin(t)
	logo := testJPEG(t, 550, 190)
	o.put("/images/srpr/logo4w.jpeg", logo, "ETag", `"100599a17-17db2"`,
		"Last-Modified", "Wed, 23 May 2012 14:03:44 GMT", "Cache-Control", "max-age=1000")
	k := newExampleKatana(t, o, false)

	resp, body := k.get(t, "/images/srpr/logo4w.jpeg")
	wantStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, logo) {
		t.Error("body differs from the origin's")
	}
	for h, want := range map[string]string{
		"Content-Type":  "image/jpeg",
		"ETag":          `"100599a17-17db2"`,
		"Last-Modified": "Wed, 23 May 2012 14:03:44 GMT",
		"Cache-Control": "max-age=1000", // max(external_expires 600, 1000)
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if resp.Header.Get("Expires") == "" || resp.Header.Get("X-Response-Time") == "" {
		t.Errorf("Expires or X-Response-Time missing: %v", resp.Header)
	}
	if !exists(filepath.Join(k.dir, "images/srpr/logo4w/source.jpeg")) ||
		!exists(filepath.Join(k.dir, "images/srpr/logo4w/source.jpeg.META")) {
		t.Errorf("cache holds %v, want images/srpr/logo4w/source.jpeg and its META", cacheFiles(t, k.dir))
	}
}

func TestExampleE2ResizeToWebP(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/images/srpr/logo4w.png", testPNG(t, 550, 190, color.NRGBA{10, 120, 200, 255}), "ETag", `"p1"`)
	k := newExampleKatana(t, o, false)

	resp, body := k.get(t, "/images/srpr/logo4w.png/resize-300x.webp")
	wantStatus(t, resp, body, http.StatusOK)
	if b := decodeImage(t, body, "webp").Bounds(); b.Dx() != 300 || b.Dy() != 104 {
		t.Errorf("size = %dx%d, want 300x104", b.Dx(), b.Dy())
	}
	if got := resp.Header.Get("Content-Type"); got != "image/webp" {
		t.Errorf("Content-Type = %q", got)
	}
	if !exists(filepath.Join(k.dir, "images/srpr/logo4w-300x0-0-q75.webp")) {
		t.Errorf("variant missing; cache holds %v", cacheFiles(t, k.dir))
	}
	// Fixed (B13): the variant has its own ETag, not the source's.
	if got := resp.Header.Get("ETag"); got == "" || got == `"p1"` {
		t.Errorf("variant ETag = %q, want one of its own", got)
	}
}

func TestExampleE3ClientRevalidation(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/images/srpr/logo4w.png", testPNG(t, 20, 20, color.NRGBA{255, 255, 255, 255}), "ETag", `"e3"`)
	k := newExampleKatana(t, o, false)
	k.get(t, "/images/srpr/logo4w.png")

	resp, body := k.get(t, "/images/srpr/logo4w.png", "If-None-Match", `"e3"`)
	wantStatus(t, resp, body, http.StatusNotModified)
	if got := o.count("GET", "/images/srpr/logo4w.png"); got != 1 {
		t.Errorf("origin GETs = %d, want 1: a fresh entry answers 304 alone", got)
	}

	// Stale: Katana revalidates with the origin, which answers 304.
	k.s.now = func() time.Time { return time.Now().Add(time.Hour) }
	before := o.total()
	resp, body = k.get(t, "/images/srpr/logo4w.png", "If-None-Match", `"e3"`)
	wantStatus(t, resp, body, http.StatusNotModified)
	if o.total() == before {
		t.Error("a stale entry was not revalidated with the origin")
	}
}

func TestExampleE4PlaceholderForMiss(t *testing.T) {
	o := newTestOrigin(t)
	k := newExampleKatana(t, o, true)
	resp, body := k.get(t, "/video-xk1a2b-poster-12_640x.webp")
	wantStatus(t, resp, body, http.StatusOK)
	if got := o.count("GET", "/thumbnails/video-xk1a2b-poster-12.jpeg") +
		o.count("HEAD", "/thumbnails/video-xk1a2b-poster-12.jpeg"); got == 0 {
		t.Error("origin was not asked for /thumbnails/video-xk1a2b-poster-12.jpeg")
	}
	// The placeholder is 100x50 and is never enlarged.
	if b := decodeImage(t, body, "webp").Bounds(); b.Dx() != 100 || b.Dy() != 50 {
		t.Errorf("placeholder size = %v, want 100x50", b)
	}
	if resp.Header.Get("ETag") != "" || resp.Header.Get("Cache-Control") != "max-age=60" {
		t.Errorf("placeholder headers = %v", resp.Header)
	}
	if files := cacheFiles(t, k.dir); len(files) != 0 {
		t.Errorf("a miss left %v in the cache (the original made directories)", files)
	}

	k = newExampleKatana(t, o, false)
	resp, body = k.get(t, "/video-xk1a2b-poster-12_640x.webp")
	wantStatus(t, resp, body, http.StatusNotFound)
}

func TestExampleE5InvalidResizeIsNotFound(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/images/srpr/logo4w.png", testPNG(t, 20, 20, color.NRGBA{255, 255, 255, 255}))
	k := newExampleKatana(t, o, false)
	// Fixed (B9): regexes match the whole path, so a 5-digit width is a 404,
	// not the original image.
	resp, body := k.get(t, "/images/srpr/logo4w.png/resize-12345x.webp")
	wantStatus(t, resp, body, http.StatusNotFound)
	// png is not an output of the simple sample: proxy matches the whole
	// path and the origin has no such file; no directory is left behind.
	resp, body = k.get(t, "/images/srpr/logo4w.png/resize-300x.png")
	wantStatus(t, resp, body, http.StatusNotFound)
	if files := cacheFiles(t, k.dir); len(files) != 0 {
		t.Errorf("cache holds %v, want nothing", files)
	}
}

func TestExampleE6SourceURLIsReencoded(t *testing.T) {
	o := newTestOrigin(t)
	src := testJPEG(t, 64, 48)
	o.put("/x2abc.jpg", src)
	k := newExampleKatana(t, o, false)

	resp, body := k.get(t, "/channel-x2abc-cover-3.jpeg")
	wantStatus(t, resp, body, http.StatusOK)
	if b := decodeImage(t, body, "jpeg").Bounds(); b.Dx() != 64 || b.Dy() != 48 {
		t.Errorf("size = %v, want 64x48", b)
	}
	for _, f := range []string{"channel/x/2/x2abc-cover-3/src.jpeg", "channel/x/2/x2abc-cover-3/0x0-0-q75.jpeg"} {
		if !exists(filepath.Join(k.dir, f)) {
			t.Errorf("%s missing; cache holds %v", f, cacheFiles(t, k.dir))
		}
	}

	resp, body = k.get(t, "/channel-x2abc-cover-3")
	wantStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, src) {
		t.Error("the extension-less URL did not serve src.jpeg as it is")
	}
	if got := o.count("GET", "/x2abc.jpg"); got != 1 {
		t.Errorf("origin GETs = %d, want 1: proxy and resize share the source", got)
	}
	resp, body = k.do(t, "POST", "/channel-x2abc-cover-3")
	wantStatus(t, resp, body, http.StatusMethodNotAllowed)
}

// testStripes makes a w×h PNG whose top half is red and bottom half blue.
func testStripes(t *testing.T, w, h int) []byte {
	t.Helper()
	return encodePNG(t, halves(w, h, true, color.NRGBA{230, 10, 10, 255}, color.NRGBA{10, 10, 230, 255}))
}

func TestFillGravityThroughHandler(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/tall.png", testStripes(t, 40, 160))
	k := newKatana(t, o, nil)
	tests := []struct {
		suffix string
		r, b   uint8 // expected colour at the centre of the crop
		file   string
	}{
		{"resize-40x40-f.png", 0, 0, "tall-40x40-1-q75.png"}, // centre: the red/blue border
		{"resize-40x40-f-top.png", 230, 10, "tall-40x40-1-top-q75.png"},
		{"resize-40x40-crop-bottom.png", 10, 230, "tall-40x40-1-bottom-q75.png"},
		{"resize-40x40-fit-top.png", 0, 0, "tall-40x40-0-q75.png"}, // no crop: anchor ignored
	}
	for _, tt := range tests {
		t.Run(tt.suffix, func(t *testing.T) {
			resp, body := k.get(t, "/tall.png/"+tt.suffix)
			wantStatus(t, resp, body, http.StatusOK)
			img := decodeImage(t, body, "png")
			if tt.r != 0 || tt.b != 0 {
				if b := img.Bounds(); b.Dx() != 40 || b.Dy() != 40 {
					t.Fatalf("size = %v, want 40x40", b)
				}
				if c := img.At(20, 20); !nearRGB(c, tt.r, 10, tt.b, 3) {
					t.Errorf("centre colour = %v, want (%d,10,%d)", c, tt.r, tt.b)
				}
			}
			if !exists(filepath.Join(k.dir, tt.file)) {
				t.Errorf("variant not at %s; cache holds %v", tt.file, cacheFiles(t, k.dir))
			}
		})
	}
}

func TestAutoFormatNegotiation(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/a.jpg", testJPEG(t, 64, 32))
	o.put("/t.png", testPNG(t, 64, 32, color.NRGBA{200, 0, 0, 128}))
	k := newKatana(t, o, nil)
	tests := []struct {
		path, accept, ctype string
	}{
		{"/a.jpg/resize-32x.auto", "image/avif,image/webp,*/*", "image/webp"},
		{"/a.jpg/resize-32x.auto", "image/png,*/*", "image/jpeg"},
		{"/a.jpg/resize-32x.auto", "image/webp;q=0,image/*", "image/jpeg"},
		{"/a.jpg/resize-32x.auto", "", "image/jpeg"},
		{"/t.png/resize-32x.auto", "image/png", "image/png"}, // alpha: PNG, not JPEG
		{"/t.png/resize-32x.auto", "image/webp", "image/webp"},
	}
	etags := map[string]string{}
	for _, tt := range tests {
		resp, body := k.get(t, tt.path, "Accept", tt.accept)
		wantStatus(t, resp, body, http.StatusOK)
		if got := resp.Header.Get("Content-Type"); got != tt.ctype {
			t.Errorf("%s with Accept %q: Content-Type = %q, want %q", tt.path, tt.accept, got, tt.ctype)
		}
		if got := resp.Header.Get("Vary"); got != "Accept" {
			t.Errorf("%s: Vary = %q, want Accept", tt.path, got)
		}
		decodeImage(t, body, strings.TrimPrefix(tt.ctype, "image/"))
		etag := resp.Header.Get("ETag")
		if prev, ok := etags[tt.path+tt.ctype]; ok && prev != etag {
			t.Errorf("%s %s: ETag changed from %s to %s", tt.path, tt.ctype, prev, etag)
		}
		etags[tt.path+tt.ctype] = etag
	}
	if etags["/a.jpg/resize-32x.autoimage/webp"] == etags["/a.jpg/resize-32x.autoimage/jpeg"] {
		t.Error("the WebP and JPEG answers share an ETag")
	}
	for _, f := range []string{"a-32x0-0-q75.webp", "a-32x0-0-q75.auto"} {
		if !exists(filepath.Join(k.dir, f)) {
			t.Errorf("no cache entry %s; cache holds %v", f, cacheFiles(t, k.dir))
		}
	}
	// The explicit .webp URL shares the negotiated WebP file.
	before := k.s.stats.resizes.Load()
	resp, body := k.get(t, "/a.jpg/resize-32x.webp")
	wantStatus(t, resp, body, http.StatusOK)
	if k.s.stats.resizes.Load() != before || resp.Header.Get("Vary") != "" {
		t.Errorf("explicit .webp: resized again or Vary %q", resp.Header.Get("Vary"))
	}
}

func TestWebPLosslessRoute(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/s.png", testStripes(t, 16, 16))
	conf := strings.Replace(defaultConfigTOML, "origin = \"default\"\n", "origin = \"default\"\nwebp_lossless = true\n", 1)
	k := newKatanaTOML(t, conf, func(c *Config) {
		c.Origins["default"] = map[string]*ClusterConfig{"t": {IPs: []string{o.node()}}}
	})
	resp, body := k.get(t, "/s.png/resize-x.webp")
	wantStatus(t, resp, body, http.StatusOK)
	img := decodeImage(t, body, "webp")
	for _, p := range []image.Point{{8, 0}, {8, 7}, {8, 8}, {8, 15}} {
		want := uint8(230)
		if p.Y >= 8 {
			want = 10
		}
		if c := img.At(p.X, p.Y); !nearRGB(c, want, 10, 240-want, 0) {
			t.Errorf("lossless pixel %v = %v, want exact", p, c)
		}
	}
}

// Extreme aspect ratios used to ask for outputs of millions of pixels a side,
// and kill the process for want of memory, or fail in the encoder with 500.
func TestExtremeOutputsAreBoundedOr422(t *testing.T) {
	o := newTestOrigin(t)
	wide, err := os.ReadFile("testdata/cases/extreme/wide-10000x1.png")
	if err != nil {
		t.Fatal(err)
	}
	o.put("/wide.png", wide)
	o.put("/strip.png", encodePNG(t, image.NewGray(image.Rect(0, 0, 50000, 1))))
	k := newKatana(t, o, nil)
	tests := []struct {
		path   string
		status int
		w, h   int
	}{
		{"/wide.png/resize-x1080-f.png", 200, 1920, 1080}, // derived width clamped to thumb_max_width
		{"/wide.png/resize-x30-f.jpeg", 200, 1920, 30},
		{"/wide.png/resize-100x.png", 200, 100, 1},
		{"/strip.png/resize-x.webp", 422, 0, 0}, // 50000 px wide: no encoder takes it
		{"/strip.png/resize-x.jpeg", 422, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := k.get(t, tt.path)
			wantStatus(t, resp, body, tt.status)
			if tt.status != 200 {
				return
			}
			img := decodeImage(t, body, sniffFormat(body))
			if b := img.Bounds(); b.Dx() != tt.w || b.Dy() != tt.h {
				t.Errorf("size = %dx%d, want %dx%d", b.Dx(), b.Dy(), tt.w, tt.h)
			}
		})
	}
}

func TestJobOverTheMemoryBudgetIs422(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/big.png", encodePNG(t, image.NewGray(image.Rect(0, 0, 6000, 6000))))
	o.put("/small.png", encodePNG(t, image.NewGray(image.Rect(0, 0, 500, 500))))
	k := newKatana(t, o, func(c *Config) { c.MaxMemory = 64 << 20 })
	resp, body := k.get(t, "/big.png/resize-x.webp")
	wantStatus(t, resp, body, http.StatusUnprocessableEntity)
	resp, body = k.get(t, "/small.png/resize-x.webp")
	wantStatus(t, resp, body, http.StatusOK)
}

func TestSourceRemovedBeforeItsJobIsFetchedAgain(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/g.jpg", testJPEG(t, 64, 64))
	k := newKatana(t, o, nil)
	k.get(t, "/g.jpg")
	// The cleaner deletes the source after it was looked up: simulate it by
	// removing the file between the lookup and the job.
	swapTransform(t, func(ctx context.Context, b []byte, opt imageOptions) ([]byte, string, error) {
		return transformImage(ctx, b, opt)
	})
	os.Remove(filepath.Join(k.dir, "g/source.jpg"))
	resp, body := k.get(t, "/g.jpg/resize-32x.png")
	wantStatus(t, resp, body, http.StatusOK)
	if got := o.count("GET", "/g.jpg"); got != 2 {
		t.Errorf("origin GETs = %d, want 2: the vanished source is fetched again", got)
	}
}

func TestGzippedImageOnAnImageRoute(t *testing.T) {
	o := newTestOrigin(t)
	img := testJPEG(t, 32, 32)
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(img)
	zw.Close()
	o.put("/z.jpg", zb.Bytes(), "Content-Encoding", "gzip", "Content-Type", "image/jpeg")
	o.put("/badz.jpg", []byte("not gzip at all"), "Content-Encoding", "gzip")
	k := newKatana(t, o, nil)
	resp, body := k.get(t, "/z.jpg")
	wantStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, img) || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzipped origin image: %d bytes, Content-Encoding %q; want the decoded image",
			len(body), resp.Header.Get("Content-Encoding"))
	}
	resp, body = k.get(t, "/badz.jpg")
	wantStatus(t, resp, body, http.StatusBadGateway)
}

// exists reports whether a regular file is at path.
func exists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
