//go:build linux

// fault_test.go tests crash safety and a full disk: the real binary killed with
// SIGKILL in the middle of concurrent misses, and a cache on a tiny tmpfs.
package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"log/slog"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// buildKatana builds the real binary into a temporary directory.
func buildKatana(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "katana")
	cmd := exec.Command("go", "build", "-tags", "nodynamic", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// katanaProc is the real binary running on a loopback port.
type katanaProc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// startKatana runs bin with the config file and waits until it listens.
func startKatana(t *testing.T, bin, conf string) *katanaProc {
	t.Helper()
	addr := "127.0.0.1:" + freePort(t)
	logf, err := os.Create(filepath.Join(t.TempDir(), "katana.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd := exec.Command(bin, "--config", conf, "--listen", addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &katanaProc{cmd: cmd, addr: addr, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(p.kill)
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("katana exited at startup:\n%s", b)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("katana does not listen on %s", addr)
	return nil
}

// kill sends SIGKILL and waits for the process to go.
func (p *katanaProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// vmHWM is the peak resident set of the process in KiB, from /proc.
func (p *katanaProc) vmHWM() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	return -1
}

// writeBinaryConf writes a config for the binary: the embedded default routes,
// one origin node, no admin listener, quiet logs.
func writeBinaryConf(t *testing.T, cacheDir, origin, extra string) string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "katana.toml")
	body := fmt.Sprintf("cache_dir = %q\nclean_every = 3600\nadmin_listen = \"\"\n%s\n"+
		"[origins.default.test]\nips = [%q]\n[logging]\nlevel = \"WARNING\"\n",
		cacheDir, extra, origin)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

// slowOrigin serves fixed files in small chunks, so that a kill lands while
// bodies are being received, and counts the GETs it started.
type slowOrigin struct {
	files   map[string][]byte
	started atomic.Int64
}

func (o *slowOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, ok := o.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.Header().Set("Cache-Control", "max-age=3600")
	if r.Method != http.MethodGet {
		return
	}
	o.started.Add(1)
	for len(b) > 0 {
		n := min(len(b), 16<<10)
		if _, err := w.Write(b[:n]); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		b = b[n:]
		time.Sleep(2 * time.Millisecond)
	}
}

// noisePNG is a w×h PNG of seeded noise: it does not compress, so its size is
// about 3·w·h bytes.
func noisePNG(t *testing.T, w, h int, seed int64) []byte {
	t.Helper()
	rnd := rand.New(rand.NewSource(seed))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] =
			uint8(rnd.Intn(256)), uint8(rnd.Intn(256)), uint8(rnd.Intn(256)), 255
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// faultImages makes n distinct images of varied sizes: JPEGs and noise PNGs.
func faultImages(t *testing.T, n int) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for i := 0; i < n; i++ {
		w, h := 40+(i*37)%600, 30+(i*53)%400
		if i%3 == 0 {
			files[fmt.Sprintf("/f%02d.png", i)] = noisePNG(t, w, h, int64(i))
			continue
		}
		files[fmt.Sprintf("/f%02d.jpg", i)] = testJPEG(t, w, h)
	}
	return files
}

// faultURL is request i of the kill test: a source, or a variant of one.
type faultURL struct {
	path   string
	source string // origin path
	width  int    // of a variant; 0 for a source
	format string
}

func faultURLs(files map[string][]byte, n int) []faultURL {
	var names []string
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	formats := []string{"jpeg", "png", "webp"}
	var urls []faultURL
	for i := 0; i < n; i++ {
		src := names[i%len(names)]
		if i%2 == 0 {
			urls = append(urls, faultURL{path: src, source: src})
			continue
		}
		w, f := 8+(i%5)*6, formats[i%3]
		urls = append(urls, faultURL{path: fmt.Sprintf("%s/resize-%dx.%s", src, w, f),
			source: src, width: w, format: f})
	}
	return urls
}

// checkFaultAnswer fails unless body is the right answer to u.
func checkFaultAnswer(t *testing.T, files map[string][]byte, u faultURL, body []byte) {
	t.Helper()
	if u.width == 0 {
		if !bytes.Equal(body, files[u.source]) {
			t.Errorf("GET %s: %d bytes differ from the origin's %d", u.path, len(body),
				len(files[u.source]))
		}
		return
	}
	if got := sniffFormat(body); got != u.format {
		t.Errorf("GET %s: format %q, want %s", u.path, got, u.format)
		return
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(body))
	if err != nil || cfg.Width != u.width {
		t.Errorf("GET %s: decodes to width %d (%v), want %d", u.path, cfg.Width, err, u.width)
	}
}

// checkCacheDir walks dir and fails for any entry the cache would serve whose
// bytes are wrong: a source unlike the origin's, a variant that does not decode.
func checkCacheDir(t *testing.T, dir string, files map[string][]byte) (served, orphans int) {
	t.Helper()
	c := &diskCache{dir: dir}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, metaSuffix) {
			return nil
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, dir+string(filepath.Separator)))
		if strings.HasPrefix(rel, reservedDir+"/") {
			return nil
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			return nil // a write cut short: no route can name it, the cleaner removes it
		}
		e := c.lookup(rel)
		if e == nil {
			orphans++
			return nil
		}
		served++
		b, err := os.ReadFile(p)
		if err != nil || int64(len(b)) != e.Size {
			t.Errorf("%s: %d bytes, sidecar says %d (%v)", rel, len(b), e.Size, err)
			return nil
		}
		if base, ext, ok := strings.Cut(rel, "/source."); ok {
			if want := files["/"+base+"."+ext]; !bytes.Equal(b, want) {
				t.Errorf("%s: would be served with %d bytes unlike the origin's %d", rel,
					len(b), len(want))
			}
			return nil
		}
		if _, _, err := image.DecodeConfig(bytes.NewReader(b)); err != nil {
			t.Errorf("%s: a variant that would be served does not decode: %v", rel, err)
		}
		return nil
	})
	return served, orphans
}

func TestKillNineMidFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	files := faultImages(t, 50)
	origin := &slowOrigin{files: files}
	os1 := httptestServer(t, origin)
	cacheDir := t.TempDir()
	conf := writeBinaryConf(t, cacheDir, os1, "")
	bin := buildKatana(t)
	urls := faultURLs(files, 200)

	// Three times, fire every miss at once and kill the server at a different
	// moment once bodies are flowing: few, some and most answers complete.
	client := &http.Client{Timeout: 60 * time.Second}
	for _, after := range []int64{1, 10, 60} {
		killMidFlight(t, bin, conf, origin, urls, after)
		served, orphans := checkCacheDir(t, cacheDir, files)
		t.Logf("after the kill: %d entries servable, %d data files without a matching "+
			"sidecar", served, orphans)
	}

	// Restart on the same cache and ask for everything again.
	k := startKatana(t, bin, conf)
	for _, u := range urls {
		resp, err := client.Get("http://" + k.addr + u.path)
		if err != nil {
			t.Fatalf("GET %s after restart: %v", u.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s after restart = %d (%v)", u.path, resp.StatusCode, err)
			continue
		}
		checkFaultAnswer(t, files, u, body)
	}
	k.kill()
	served, orphans := checkCacheDir(t, cacheDir, files)
	if served < len(files) {
		t.Errorf("after the restart %d entries are servable, want at least %d", served,
			len(files))
	}
	t.Logf("after the restart: %d entries servable, %d orphans", served, orphans)
}

// killMidFlight starts the binary, fires every URL at once, and kills it with
// SIGKILL once the origin has started GETs and after answers are complete.
func killMidFlight(t *testing.T, bin, conf string, origin *slowOrigin, urls []faultURL,
	after int64) {
	t.Helper()
	k := startKatana(t, bin, conf)
	started := origin.started.Load()
	var answered atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 60 * time.Second}
	for _, u := range urls {
		wg.Add(1)
		go func(u faultURL) {
			defer wg.Done()
			resp, err := client.Get("http://" + k.addr + u.path)
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answered.Add(1)
		}(u)
	}
	for (origin.started.Load()-started < 5 || answered.Load() < after) &&
		answered.Load() < int64(len(urls)) {
		select {
		case <-k.done:
			t.Fatal("katana exited before the kill")
		case <-time.After(time.Millisecond):
		}
	}
	k.kill()
	wg.Wait()
	t.Logf("killed after %d origin GETs started and %d of %d answers",
		origin.started.Load()-started, answered.Load(), len(urls))
	if answered.Load() == int64(len(urls)) {
		t.Errorf("every request finished before the kill; this round proves nothing")
	}
}

// httptestServer serves h on a loopback listener and returns host:port.
func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestDiskFull(t *testing.T) {
	dir := mountTmpfs(t, "2m")
	o := newTestOrigin(t)
	var names []string
	for i := 0; i < 12; i++ {
		name := fmt.Sprintf("/n%02d.png", i)
		o.put(name, noisePNG(t, 290, 290, int64(i)), "Cache-Control", "max-age=3600")
		names = append(names, name)
	}
	k := newKatana(t, o, func(c *Config) {
		c.CacheDir = dir
		c.CacheDirMaxUsage = 60
		c.CleanLowWater = 30
	})

	// Fill the disk with sources until the cache refuses.
	var stored []string
	full := ""
	for _, name := range names {
		resp, body := k.get(t, name)
		if resp.StatusCode == http.StatusOK {
			stored = append(stored, name)
			continue
		}
		wantStatus(t, resp, body, http.StatusServiceUnavailable)
		if !strings.Contains(string(body), "cache unavailable") ||
			resp.Header.Get("Retry-After") == "" {
			t.Errorf("GET %s on a full disk = %q, Retry-After %q; want \"cache unavailable\""+
				" and a Retry-After", name, body, resp.Header.Get("Retry-After"))
		}
		full = name
		break
	}
	if full == "" || len(stored) == 0 {
		t.Fatalf("stored %d of %d images on a 2 MiB disk, want some stored then a 503",
			len(stored), len(names))
	}

	// What is cached is still served, and a variant that needs no new space
	// beyond what is left answers cleanly either way.
	for _, name := range stored {
		resp, body := k.get(t, name)
		wantStatus(t, resp, body, http.StatusOK)
		if !bytes.Equal(body, o.files[name].body) {
			t.Errorf("GET %s on a full disk: not the cached bytes", name)
		}
	}
	resp, body := k.get(t, stored[0]+"/resize-280x.png")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET a large variant on a full disk = %d (%q), want 503", resp.StatusCode,
			truncate(body))
	}
	resp, body = k.get(t, full+"/resize-200x.png")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET a variant of an image that could not be stored = %d (%q), want 503",
			resp.StatusCode, truncate(body))
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, reservedDir, "tmp")); len(tmp) != 0 {
		t.Errorf("temporary files left on a full disk: %d", len(tmp))
	}

	// The cleaner frees space; the refused image is then fetched and served.
	if err := runCleanOnce(context.Background(), k.s.cfg,
		slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("cleaner: %v", err)
	}
	resp, body = k.get(t, full)
	wantStatus(t, resp, body, http.StatusOK)
	if !bytes.Equal(body, o.files[full].body) {
		t.Errorf("GET %s after cleaning: %d bytes differ from the origin's", full, len(body))
	}
	resp, body = k.get(t, full+"/resize-20x.png")
	wantStatus(t, resp, body, http.StatusOK)
	if b := decodeImage(t, body, "png").Bounds(); b.Dx() != 20 {
		t.Errorf("variant after cleaning is %d wide, want 20", b.Dx())
	}
	want := map[string][]byte{}
	for _, name := range names {
		want[name] = o.files[name].body
	}
	served, _ := checkCacheDir(t, dir, want)
	t.Logf("stored %d sources before the disk filled; %d entries servable after cleaning",
		len(stored), served)
}

func TestBinaryBoundsRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	origin := httptestServer(t, &slowOrigin{files: map[string][]byte{"/b.jpg": testJPEG(t, 8, 8)}})
	k := startKatana(t, buildKatana(t), writeBinaryConf(t, t.TempDir(), origin, ""))
	tests := []struct {
		name, req string
		status    int
	}{
		{"headers over MaxHeaderBytes", "GET /b.jpg HTTP/1.1\r\nHost: x\r\nX-Big: " +
			strings.Repeat("b", 100<<10) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"request line over MaxHeaderBytes", "GET /" + strings.Repeat("l", 100<<10) +
			".jpg HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"path over maxPathLen", "GET /" + strings.Repeat("p", 3000) +
			".jpg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", http.StatusRequestURITooLong},
		{"NUL in the request line", "GET /b\x00.jpg HTTP/1.1\r\nHost: x\r\n\r\n",
			http.StatusBadRequest},
		{"valid", "GET /b.jpg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := rawExchange(t, k.addr, tt.req); got != tt.status {
				t.Errorf("%s = %d, want %d", tt.name, got, tt.status)
			}
		})
	}
}
