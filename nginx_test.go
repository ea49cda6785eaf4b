package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nginxBinary finds nginx on PATH or where Debian puts it; "" when absent.
func nginxBinary() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// exampleSection returns the part of deploy/nginx.conf between the
// "# katana <name>: begin" and "end" markers.
func exampleSection(t *testing.T, conf, name string) string {
	t.Helper()
	begin, end := "# katana "+name+": begin", "# katana "+name+": end"
	i, j := strings.Index(conf, begin), strings.Index(conf, end)
	if i < 0 || j < i {
		t.Fatalf("deploy/nginx.conf has no %q ... %q section", begin, end)
	}
	return conf[i+len(begin) : j]
}

// nginxConfig builds a runnable nginx.conf in dir from the example's
// upstream and locations, with the example's two instances replaced by ks.
func nginxConfig(t *testing.T, dir, listen string, ks []*testKatana) string {
	t.Helper()
	example, err := os.ReadFile(filepath.Join("deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	upstream := exampleSection(t, string(example), "upstream")
	locations := exampleSection(t, string(example), "locations")
	for i, k := range ks {
		n := i + 1
		upstream = strings.Replace(upstream, fmt.Sprintf("server 127.0.0.1:%d;", 8080+n),
			"server "+strings.TrimPrefix(k.URL, "http://")+";", 1)
		locations = strings.Replace(locations, fmt.Sprintf("/var/cache/katana-%d/", n),
			k.dir+"/", 1)
	}
	if strings.Contains(upstream, ":808") || strings.Contains(locations, "/var/cache") {
		t.Fatalf("example addresses left in the generated config:\n%s%s", upstream, locations)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers would run as nobody and not read the temp dirs
	}
	var temps strings.Builder
	for _, kind := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "    %s_temp_path %s;\n", kind, filepath.Join(dir, kind))
	}
	return fmt.Sprintf(`%s
daemon off;
master_process on;
worker_processes 1;
pid %s;
error_log %s info;
events { worker_connections 64; }
http {
    access_log %s;
%s
    %s
    server {
        listen %s;
        %s
    }
}
`, user, filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"),
		filepath.Join(dir, "access.log"), temps.String(), upstream, listen, locations)
}

// startNginx runs nginx with conf until the test ends and waits for addr.
func startNginx(t *testing.T, bin, dir, conf, addr string) {
	t.Helper()
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	errlog := filepath.Join(dir, "error.log")
	if out, err := exec.Command(bin, "-t", "-p", dir, "-e", errlog, "-c", path).
		CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s\n%s", err, out, conf)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", errlog, "-c", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// TERM lets the master stop its workers; KILL would orphan them.
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(errlog)
			t.Logf("nginx error log:\n%s%s", b, stderr.String())
		}
	})
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if i == 500 {
			b, _ := os.ReadFile(errlog)
			t.Fatalf("nginx never listened on %s: %v\n%s", addr, err, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNginxServesAccelRedirect puts the real nginx, configured with the
// example's upstream and locations, in front of two Katana instances.
func TestNginxServesAccelRedirect(t *testing.T) {
	bin := nginxBinary()
	if bin == "" {
		t.Skip("no nginx binary (apt-get install -y nginx-light)")
	}
	o := newTestOrigin(t)
	photos := map[string][]byte{}
	for i := range 16 {
		p := fmt.Sprintf("/p/photo%d.jpg", i)
		photos[p] = testJPEG(t, 32+i, 16)
		o.put(p, photos[p], "ETag", fmt.Sprintf(`"v%d"`, i))
	}
	var ks []*testKatana
	for n := 1; n <= 2; n++ {
		ks = append(ks, newKatana(t, o, func(c *Config) {
			c.AccelRedirect = true
			c.AccelRedirectPath = fmt.Sprintf("/resized/%d", n)
		}))
	}
	dir := t.TempDir()
	addr := "127.0.0.1:" + freePort(t)
	startNginx(t, bin, dir, nginxConfig(t, dir, addr, ks), addr)
	base := "http://" + addr

	owners := map[int]int{}
	for p, photo := range photos {
		for try := range 2 {
			resp, body := nginxGet(t, base+p)
			checkAccelAnswer(t, resp, body, photo, "image/jpeg")
			if try == 0 {
				continue
			}
			owner := ownerOf(t, ks, strings.TrimPrefix(p, "/"))
			owners[owner]++
			direct, err := http.Head(ks[owner].URL + p)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := resp.Header.Get("ETag"), direct.Header.Get("ETag"); got != want {
				t.Errorf("GET %s via nginx: ETag %q, want Katana's %q", p, got, want)
			}
		}
		if n := o.count("GET", p); n != 1 {
			t.Errorf("origin GETs of %s = %d, want 1: the second request went elsewhere", p, n)
		}
	}
	if len(owners) != 2 {
		t.Errorf("16 URIs went to instances %v, want both used", owners)
	}

	t.Run("variant", func(t *testing.T) {
		resp, body := nginxGet(t, base+"/p/photo3.jpg/resize-10x.webp")
		checkAccelAnswer(t, resp, body, nil, "image/webp")
		if img := decodeImage(t, body, "webp"); img.Bounds().Dx() != 10 {
			t.Errorf("variant via nginx is %v wide, want 10", img.Bounds().Dx())
		}
		etag := resp.Header.Get("ETag")
		resp, body = nginxGet(t, base+"/p/photo3.jpg/resize-10x.webp", "If-None-Match", etag)
		if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("conditional GET via nginx = %d with %d bytes, want 304", resp.StatusCode, len(body))
		}
	})
	t.Run("internal location", func(t *testing.T) {
		resp, _ := nginxGet(t, base+"/resized/1/p/photo0/source.jpg")
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET of the internal location = %d, want 404", resp.StatusCode)
		}
	})
}

func nginxGet(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// checkAccelAnswer checks an answer nginx served from Katana's cache: the
// file's bytes (when want is given) and Katana's headers, without the
// redirect itself.
func checkAccelAnswer(t *testing.T, resp *http.Response, body, want []byte, ctype string) {
	t.Helper()
	path := resp.Request.URL.Path
	if resp.StatusCode != 200 || len(body) == 0 || (want != nil && !bytes.Equal(body, want)) {
		t.Fatalf("GET %s via nginx = %d with %d bytes, want 200 and the file", path,
			resp.StatusCode, len(body))
	}
	h := resp.Header
	if got := h.Get("X-Accel-Redirect"); got != "" {
		t.Errorf("GET %s: X-Accel-Redirect %q reached the client", path, got)
	}
	if !strings.HasPrefix(h.Get("Cache-Control"), "max-age=") || h.Get("Expires") == "" {
		t.Errorf("GET %s: Cache-Control %q, Expires %q, want Katana's", path,
			h.Get("Cache-Control"), h.Get("Expires"))
	}
	if len(h.Values("ETag")) != 1 || h.Get("ETag") == "" {
		t.Errorf("GET %s: ETag %q, want exactly Katana's", path, h.Values("ETag"))
	}
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Content-Type") != ctype {
		t.Errorf("GET %s: X-Content-Type-Options %q, Content-Type %q, want nosniff and %s",
			path, h.Get("X-Content-Type-Options"), h.Get("Content-Type"), ctype)
	}
}

// ownerOf returns the index of the one instance whose cache holds the
// source of rel ("p/photo1.jpg" is cached as p/photo1/source.jpg).
func ownerOf(t *testing.T, ks []*testKatana, rel string) int {
	t.Helper()
	src := strings.TrimSuffix(rel, ".jpg") + "/source.jpg"
	owner := -1
	for i, k := range ks {
		if _, err := os.Stat(filepath.Join(k.dir, src)); err == nil {
			if owner >= 0 {
				t.Fatalf("%s is cached by instances %d and %d, want one", src, owner+1, i+1)
			}
			owner = i
		}
	}
	if owner < 0 {
		t.Fatalf("%s is cached by no instance", src)
	}
	return owner
}
