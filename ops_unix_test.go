//go:build unix

package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// startApp runs the command line in the background until ctx ends and
// waits until addr accepts connections.
func startApp(t *testing.T, ctx context.Context, addr string, args ...string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, _, err := runApp(t, ctx, append(args, "--listen", addr, "--admin", "")...)
		done <- err
	}()
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return done
		}
		if i == 500 {
			t.Fatalf("katana never listened on %s: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSIGTERMLetsSlowResponseFinish(t *testing.T) {
	o := newTestOrigin(t)
	photo := testJPEG(t, 64, 32)
	o.put("/slow.jpg", photo)
	arrived, release := make(chan struct{}), make(chan struct{})
	o.hold = func() { arrived <- struct{}{}; <-release }
	t.Chdir(t.TempDir())
	addr := "127.0.0.1:" + freePort(t)
	done := startApp(t, context.Background(), addr, "--origin", o.URL)

	type answer struct {
		status int
		body   []byte
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow.jpg")
		if err != nil {
			got <- answer{err: err}
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- answer{resp.StatusCode, body, err}
	}()
	<-arrived
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Shutdown closes the listener first: wait for that, then let the
	// origin answer the request still in flight.
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if i == 500 {
			t.Fatal("katana still accepts connections after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	a := <-got
	if a.err != nil || a.status != 200 || !bytes.Equal(a.body, photo) {
		t.Errorf("in-flight GET across SIGTERM = %d, %d bytes, %v; want 200 and the photo",
			a.status, len(a.body), a.err)
	}
	if err := <-done; err != nil {
		t.Errorf("katana after SIGTERM returned %v, want nil (exit 0)", err)
	}
}

func TestSIGHUPReloadsConfig(t *testing.T) {
	photos, _ := photoDir(t)
	path := filepath.Join(t.TempDir(), "katana.toml")
	writeConfig(t, path, "one", photos)
	ctx, cancel := context.WithCancel(context.Background())
	addr := "127.0.0.1:" + freePort(t)
	done := startApp(t, ctx, addr, "--config", path)
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("katana returned %v", err)
		}
	}()
	status := func(target string) int {
		resp, err := http.Get("http://" + addr + target)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("/one/a.jpg"); got != 200 {
		t.Fatalf("GET /one/a.jpg = %d, want 200", got)
	}

	writeConfig(t, path, "two", photos)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for i := 0; status("/two/a.jpg") != 200; i++ {
		if i == 500 {
			t.Fatal("GET /two/a.jpg never answered 200 after SIGHUP")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := status("/one/a.jpg"); got != 404 {
		t.Errorf("GET /one/a.jpg after SIGHUP = %d, want 404", got)
	}
}

func TestSIGTERMGraceRunsOut(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/stuck.jpg", testJPEG(t, 16, 8))
	arrived, never := make(chan struct{}), make(chan struct{})
	o.hold = func() { arrived <- struct{}{}; <-never }
	t.Cleanup(func() { close(never) }) // before the origin closes: it waits for handlers
	dir := t.TempDir()
	path := filepath.Join(dir, "katana.toml")
	os.WriteFile(path, []byte("cache_dir = '"+dir+"/cache'\nshutdown_grace = '50ms'\n"+
		"[origins.default.o]\nips = ['"+o.node()+"']\n"), 0o644)
	addr := "127.0.0.1:" + freePort(t)
	done := startApp(t, context.Background(), addr, "--config", path)

	failed := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/stuck.jpg")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		failed <- err
	}()
	<-arrived
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("katana after the grace ran out returned %v, want nil (exit 0)", err)
	}
	if err := <-failed; err == nil {
		t.Error("a request stuck past shutdown_grace got an answer, want its connection closed")
	}
}
