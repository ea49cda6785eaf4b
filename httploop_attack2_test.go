// httploop_attack2_test.go holds a second attack on the HTTP/1.1 loop and on
// what serves through it: the watcher with pipelined requests, held bodies
// against purges and new versions, and the access log's group commit.
package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestAttack2PipelinedSlowPairKeepsBytes: two slow requests sent together,
// then a third one while the first still runs. The watcher of the first
// reads the third's first byte into connSource.pending; the second is served
// from the buffer with that byte still pending, and its own watcher reads the
// next byte into the same one-byte array that pending points to, so the
// third request loses its first byte ("ET /echo HTTP/1.1").
func TestAttack2PipelinedSlowPairKeepsBytes(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/slow") {
			time.Sleep(3 * watchAfter) // a miss that takes longer than watchAfter
			fmt.Fprintf(w, "%s", r.URL.Path)
			return
		}
		echo(w, r)
	})
	ls := startLoop(t, slow, nil)
	cl := dialLoop(t, ls.addr)
	cl.send("GET /slow1 HTTP/1.1\r\nHost: t\r\n\r\nGET /slow2 HTTP/1.1\r\nHost: t\r\n\r\n")
	time.Sleep(watchAfter / 4) // both heads are in the loop's buffer now
	cl.send(echoGet)           // comes from the socket, after the buffered two
	for i, want := range []string{"/slow1", "/slow2", echoed} {
		resp, body, err := cl.readErr(http.MethodGet)
		if err != nil {
			t.Fatalf("answer %d: %v, want %q", i+1, err, want)
		}
		if body != want {
			t.Fatalf("answer %d = %d %q (via %s), want %q", i+1, resp.StatusCode, body,
				resp.Header.Get("X-Via"), want)
		}
	}
}

// steppedOut is a write function that waits at each call until the test
// lets it go, then records what its buffer holds: as a slow write(2) reads
// its buffer while it runs.
type steppedOut struct {
	entered, proceed chan struct{}
	got              bytes.Buffer // only touched by the writing goroutine, in order
}

func newSteppedOut() *steppedOut {
	return &steppedOut{entered: make(chan struct{}), proceed: make(chan struct{})}
}

func (o *steppedOut) write(p []byte) (int, error) {
	o.entered <- struct{}{}
	<-o.proceed
	o.got.Write(p)
	return len(p), nil
}

// step waits for the next write to begin, runs during, then lets it end.
func (o *steppedOut) step(t *testing.T, during func()) {
	t.Helper()
	select {
	case <-o.entered:
	case <-time.After(loopHang):
		t.Fatal("no write began")
	}
	if during != nil {
		during()
	}
	o.proceed <- struct{}{}
}

// TestAttack2LineBatchKeepsLines: a log whose writes stall (a full pipe to
// journald, a slow disk) lets the batch grow past lineBatchMax. drain then
// keeps the old spare, which is the array batch already uses: the next round
// writes that array while new lines are appended into it, so a line is lost
// and another written twice.
func TestAttack2LineBatchKeepsLines(t *testing.T) {
	var lb lineBatch
	o := newSteppedOut()
	line := func(name string, n int) []byte {
		return fmt.Appendf(nil, "%s %s\n", name, strings.Repeat("x", n))
	}
	var want bytes.Buffer
	add := func(b []byte) {
		want.Write(b)
		lb.write(b, o.write)
	}
	done := make(chan struct{})
	go func() { add(line("l0", 10)); close(done) }()
	o.step(t, func() { add(line("l1", 10)) }) // l1 waits in the batch
	o.step(t, nil)                            // the batch of l1 goes; its array is the spare
	<-done

	done = make(chan struct{})
	go func() { add(line("l2", 10)); close(done) }()
	o.step(t, func() {
		// The write of l2 stalls: the batch grows past lineBatchMax of capacity.
		for i := 0; ; i++ {
			lb.mu.Lock()
			big := cap(lb.batch) > lineBatchMax
			lb.mu.Unlock()
			if big {
				break
			}
			add(line(fmt.Sprintf("m%d", i), 1000))
		}
	})
	o.step(t, func() { add(line("n1", 10)) }) // the big batch goes; n1 into the spare
	o.step(t, func() { add(line("n2", 10)) }) // n1's batch goes; n2 comes meanwhile
	o.step(t, nil)
	<-done
	if got := o.got.String(); got != want.String() {
		t.Fatalf("log holds %d bytes ending %q, want %d bytes ending %q", len(got),
			tail(got), want.Len(), tail(want.String()))
	}
}

func tail(s string) string { return s[max(0, len(s)-40):] }

// TestAttack2PurgeDuringReadDropsHeldBody: a purge (POST /purge on the admin
// listener) that comes while a request reads the small file it serves, after
// it opened the file and before it keeps the bytes in memory. diskCache.remove
// drops the held copy first; the request then calls hold and puts the purged
// entry and its bytes back, marked checked now. For heldCheckEvery (1 s) every
// hit serves the purged bytes from memory, with no stat that would see the file
// gone: a CDN in front keeps that answer for its whole max-age.
func TestAttack2PurgeDuringReadDropsHeldBody(t *testing.T) {
	o := newTestOrigin(t)
	oldBody, newBody := testJPEG(t, 40, 20), testJPEG(t, 20, 40)
	o.put("/img/cat.jpg", oldBody, "Cache-Control", "max-age=3600", "ETag", `"v1"`)
	k := newKatana(t, o, nil)
	k.s.metrics = newMetrics(func() *Cleaner { return nil })
	admin := httptest.NewServer(newAdminHandler(func() *server { return k.s }, k.s.metrics))
	defer admin.Close()

	// The second access of the file is the open of the answer to the miss
	// (the first is the Commit): the origin gets a new version and the
	// operator purges the old one right then, as the request reads it.
	var touches atomic.Int32
	var purged []string
	touch := k.s.cache.touch
	k.s.cache.touch = func(rel string, size int64) {
		if rel == "img/cat/source.jpg" &&
			touches.Add(1) == 2 {
			o.put("/img/cat.jpg", newBody, "Cache-Control", "max-age=3600", "ETag", `"v2"`)
			status, res := purgeCall(t, admin.URL, "/img/cat.jpg")
			if status != http.StatusOK {
				t.Errorf("POST /purge = %d, want 200", status)
			}
			purged = res.Removed
		}
		if touch != nil {
			touch(rel, size)
		}
	}
	resp, body := k.get(t, "/img/cat.jpg")
	wantStatus(t, resp, body, http.StatusOK)
	if !slices.Contains(purged, "img/cat/source.jpg") {
		t.Fatalf("purge during the read removed %q, want the source", purged)
	}
	resp, body = k.get(t, "/img/cat.jpg")
	wantStatus(t, resp, body, http.StatusOK)
	if got := resp.Header.Get("Etag"); got != `"v2"` || !bytes.Equal(body, newBody) {
		t.Fatalf("GET after the purge = ETag %s, %d bytes (old %v), want the new "+
			"version \"v2\" fetched again (origin GETs %d)", got, len(body),
			bytes.Equal(body, oldBody), o.count("GET", "/img/cat.jpg"))
	}
}

// TestAttack2HEADLengthFromReadFrom: a handler that copies a file without
// setting Content-Length gets one on GET (the loop holds the small body);
// HEAD of the same must carry what the GET would, as finish counts it for
// Write. ReadFrom returns before counting for HEAD, so the HEAD answer has
// no length and io.Copy reports 0 bytes.
func TestAttack2HEADLengthFromReadFrom(t *testing.T) {
	path := filepath.Join(t.TempDir(), "small.jpg")
	data := testJPEG(t, 40, 20)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	copied := make(chan int64, 2)
	ls := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		n, _ := io.Copy(w, f)
		copied <- n
	}), nil)
	cl := dialLoop(t, ls.addr)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		cl.send(method + " /f HTTP/1.1\r\nHost: t\r\n\r\n")
		resp, _ := cl.read(method)
		wantVia(t, resp, "loop")
		if n := <-copied; resp.ContentLength != int64(len(data)) || n != int64(len(data)) {
			t.Errorf("%s: Content-Length = %d, io.Copy = %d, want %d for both", method,
				resp.ContentLength, n, len(data))
		}
	}
}

// TestAttack2HandoffKeepsPendingByte: a slow GET and, in the same packet,
// the head of a POST; its body comes a moment later. The watcher of the GET
// reads the body's first byte into connSource.pending; the POST's head is
// whole in the buffer, so nothing reads pending before handOff, which gives
// net/http only the buffered bytes: the body loses its first byte and
// net/http waits for one that never comes.
func TestAttack2HandoffKeepsPendingByte(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(3 * watchAfter)
			io.WriteString(w, "slow")
			return
		}
		echo(w, r)
	})
	ls := startLoop(t, slow, nil)
	cl := dialLoop(t, ls.addr)
	cl.c.SetDeadline(time.Now().Add(time.Second)) // a hang shows as a timeout
	cl.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n" +
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n")
	time.Sleep(watchAfter / 4) // both heads are in the loop's buffer now
	cl.send("hi")
	if resp, body := cl.read(http.MethodGet); body != "slow" {
		t.Fatalf("first answer = %d %q, want slow", resp.StatusCode, body)
	}
	resp, body, err := cl.readErr(http.MethodPost)
	if err != nil {
		t.Fatalf("answer to the POST: %v, want %q", err, "POST /echo t HTTP/1.1|hi")
	}
	if want := "POST /echo t HTTP/1.1|hi"; body != want {
		t.Fatalf("answer to the POST = %d %q, want %q", resp.StatusCode, body, want)
	}
}

// TestAttack2HalfClosedPipelineAnswered: a client that sends two requests
// and half-closes (printf ... | nc -N), the first slow. net/http cancels the
// context (EOF of its background read) yet answers both; the loop's watcher
// takes the EOF for a client gone and closes after the first answer, so the
// buffered second request is never answered.
func TestAttack2HalfClosedPipelineAnswered(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(3 * watchAfter)
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, r.URL.Path)
	})
	const pipeline = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n"
	var got [2][]string
	for i, loop := range []bool{false, true} {
		addr, _ := attackServer(t, h, loop, nil)
		got[i] = answers(sendChunks(t, addr, pipeline))
	}
	if !slices.Equal(got[0], got[1]) {
		t.Errorf("loop answers %q, net/http answers %q", got[1], got[0])
	}
}
