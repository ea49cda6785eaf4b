package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runApp runs the command line in-process and returns what it printed.
func runApp(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb syncBuffer
	err = newApp(&out, &errb).RunContext(ctx, append([]string{"katana"}, args...))
	return out.String(), errb.String(), err
}

func TestCLICheck(t *testing.T) {
	example := exampleAbs(t)
	t.Chdir(t.TempDir())
	out, _, err := runApp(t, context.Background(), "--config", example, "--check")
	if err != nil || !strings.Contains(out, ": ok") {
		t.Fatalf("--check of the example: %q, %v", out, err)
	}
	os.WriteFile("bad.toml", []byte("thumb_max_width = 0\nnope = 1\n[origins.default.a]\nips = ['10.0.0.{3..1}']\n"), 0o644)
	_, _, err = runApp(t, context.Background(), "--config", "bad.toml", "--check")
	if err == nil {
		t.Fatal("--check of a bad config succeeded")
	}
	for _, want := range []string{"thumb_max_width", "unknown key nope"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("--check error %q does not name %q", err, want)
		}
	}
}

func TestCLIDumpRoundTrips(t *testing.T) {
	t.Chdir(t.TempDir())
	os.Mkdir("photos", 0o755)
	out, _, err := runApp(t, context.Background(), "--origin", "./photos", "--dump")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `ips = ["./photos"]`) {
		t.Errorf("--origin did not replace the default origin:\n%s", out)
	}
	os.WriteFile("dumped.toml", []byte(out), 0o644)
	again, _, err := runApp(t, context.Background(), "--config", "dumped.toml", "--dump")
	if err != nil || again != out {
		t.Errorf("dump of the dump differs (%v):\n%s", err, again)
	}
}

func TestCLIConfigFromEnv(t *testing.T) {
	t.Chdir(t.TempDir())
	os.WriteFile("env.toml", []byte("thumb_max_width = 123\n"), 0o644)
	for _, env := range []string{"KATANA_CONFIG", "CONFIG_FILE"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, "env.toml")
			out, _, err := runApp(t, context.Background(), "--dump")
			if err != nil || !strings.Contains(out, "thumb_max_width = 123") {
				t.Errorf("%s=env.toml: %v\n%s", env, err, out)
			}
		})
	}
}

func TestCLIServesAndStops(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "localhost", "[::1]"} {
		t.Run(host, func(t *testing.T) {
			if host == "[::1]" {
				if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
					t.Skip("no IPv6 loopback here")
				} else {
					ln.Close()
				}
			}
			dir := t.TempDir()
			t.Chdir(dir)
			photos := filepath.Join(dir, "photos")
			os.Mkdir(photos, 0o755)
			os.WriteFile(filepath.Join(photos, "a.jpg"), testJPEG(t, 40, 20), 0o644)
			port := freePort(t)
			addr := strings.Trim(host, "[]")
			addr = net.JoinHostPort(addr, port)

			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			var stderr string
			go func() {
				var err error
				_, stderr, err = runApp(t, ctx, "--origin", photos, "--start", addr, "--admin", "127.0.0.1:0")
				done <- err
			}()
			url := "http://" + addr + "/a.jpg/resize-20x.png"
			var resp *http.Response
			var err error
			for i := 0; i < 100; i++ {
				if resp, err = http.Get(url); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				cancel()
				t.Fatalf("server never answered: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s = %d", url, resp.StatusCode)
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve returned %v", err)
			}
			if !strings.Contains(stderr, "listening") || !strings.Contains(stderr, "(built in)") {
				t.Errorf("startup log does not say where it listens and which config:\n%s", stderr)
			}
		})
	}
}

func exampleAbs(t *testing.T) string {
	t.Helper()
	wd, _ := os.Getwd()
	return filepath.Join(wd, "katana.toml.example")
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
