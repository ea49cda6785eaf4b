//go:build linux

// hostile_load_test.go is the hostile load test, run only with KATANA_LOAD=1
// (scripts/hostile-load.sh): the real binary on loopback takes 10,000 mixed
// requests (valid, malformed, bombs, missing) while slow clients dribble headers.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loadRSSBudget is the binary's max_memory, which its peak RSS must stay under.
const loadRSSBudget = 512 << 20

// loadKind classes a load request by what it must get.
type loadKind int

const (
	loadValid     loadKind = iota // 200, and never 5xx
	loadMalformed                 // 4xx
	loadBomb                      // 422
	loadMissing                   // 404
)

var loadKindNames = []string{"valid", "malformed", "bomb", "missing"}

// loadRequest is one request of the mix, written raw on its own connection.
type loadRequest struct {
	kind loadKind
	raw  string
}

// malformedTargets are request targets and whole requests that must get 4xx.
var malformedTargets = []string{
	"/a%00.jpg", "/a%0d%0aX-Evil:%201.jpg", "/%ff%fe.jpg", "/%c0%af.jpg",
	"/../../etc/passwd.jpg", "/a/..%2f..%2fb.jpg", "/a%5cb.jpg", "/.katana/tmp/x.jpg",
	"/x.jpg.META/y.jpg", "/" + strings.Repeat("z", 3000) + ".jpg",
	"/f01.jpg/resize-10x.gif",
}

// loadMix builds n requests over the image names: 60% valid, 20% malformed,
// 10% bombs, 10% missing, in a fixed interleaving.
func loadMix(names []string, n int) []loadRequest {
	get := func(target string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n"
	}
	bombs := []string{"/bombs/jpeg-sof-65500x65500.jpg/resize-100x.jpeg",
		"/bombs/png-ihdr-100000x100000.png/resize-100x.jpeg",
		"/bombs/png-bomb-20000x20000.png/resize-100x.webp"}
	formats := []string{"jpeg", "png", "webp", "jpeg", "png"}
	var reqs []loadRequest
	for i := 0; len(reqs) < n; i++ {
		name := names[i%len(names)]
		switch i % 10 {
		case 0, 1, 2:
			reqs = append(reqs, loadRequest{loadValid, get(name)})
		case 3, 4, 5:
			target := fmt.Sprintf("%s/resize-%dx.%s", name, 16+(i/10%4)*16, formats[i/7%5])
			reqs = append(reqs, loadRequest{loadValid, get(target)})
		case 6:
			reqs = append(reqs, loadRequest{loadMalformed,
				get(malformedTargets[i/10%len(malformedTargets)])})
		case 7:
			reqs = append(reqs, loadRequest{loadMalformed, malformedRequest(i / 10)})
		case 8:
			reqs = append(reqs, loadRequest{loadBomb, get(bombs[i/10%len(bombs)])})
		case 9:
			reqs = append(reqs, loadRequest{loadMissing, get(fmt.Sprintf("/missing-%d.jpg", i))})
		}
	}
	return reqs
}

// malformedRequest is a broken request of kind i: oversized headers, a bad
// request line, a bad method, a bad header.
func malformedRequest(i int) string {
	switch i % 4 {
	case 0:
		return "GET /f01.jpg HTTP/1.1\r\nHost: load\r\nX-Big: " + strings.Repeat("b", 100<<10) +
			"\r\nConnection: close\r\n\r\n"
	case 1:
		return "GET /f01.jpg\x00 HTTP/1.1\r\nHost: load\r\n\r\n"
	case 2:
		return "DELETE /f01.jpg HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n"
	}
	return "GET /f01.jpg HTTP/1.1\r\nHost: load\r\nBad Header\r\nConnection: close\r\n\r\n"
}

// loadResult is what the mix got, by kind and status.
type loadResult struct {
	mu       sync.Mutex
	statuses map[loadKind]map[int]int
	errors   map[loadKind]int
}

func (r *loadResult) add(k loadKind, status int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errors[k]++
		return
	}
	if r.statuses[k] == nil {
		r.statuses[k] = map[int]int{}
	}
	r.statuses[k][status]++
}

// sendRaw writes one raw request and reads the status of the answer.
func sendRaw(addr, raw string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// slowClients holds n connections that dribble a request header a byte at a
// time until ctx ends, and counts the ones the server cut off.
func slowClients(ctx context.Context, addr string, n int) (cut *atomic.Int64, wait func()) {
	cut = &atomic.Int64{}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			hdr := "GET /f01.jpg HTTP/1.1\r\nHost: load\r\nX-Slow: " + strings.Repeat("s", 4096)
			for i := 0; i < len(hdr); i++ {
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := c.Write([]byte{hdr[i]}); err != nil {
					cut.Add(1)
					return
				}
			}
		}()
	}
	return cut, wg.Wait
}

func TestHostileLoad(t *testing.T) {
	if os.Getenv("KATANA_LOAD") == "" {
		t.Skip("set KATANA_LOAD=1 to run the hostile load test (scripts/hostile-load.sh)")
	}
	const total, workers, slow = 10000, 32, 64
	files := faultImages(t, 30)
	for _, b := range []string{"jpeg-sof-65500x65500.jpg", "png-ihdr-100000x100000.png",
		"png-bomb-20000x20000.png"} {
		data, err := os.ReadFile(filepath.Join("testdata", "cases", "bombs", b))
		if err != nil {
			t.Fatal(err)
		}
		files["/bombs/"+b] = data
	}
	var names []string
	for name := range files {
		if !strings.HasPrefix(name, "/bombs/") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	origin := httptestServer(t, &slowOrigin{files: files})
	conf := writeBinaryConf(t, t.TempDir(), origin, fmt.Sprintf("max_memory = %d", loadRSSBudget))
	k := startKatana(t, buildKatana(t), conf)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	slowCtx, stopSlow := context.WithCancel(ctx)
	cut, waitSlow := slowClients(slowCtx, k.addr, slow)

	reqs := loadMix(names, total)
	res := &loadResult{statuses: map[loadKind]map[int]int{}, errors: map[loadKind]int{}}
	next := atomic.Int64{}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				status, err := sendRaw(k.addr, reqs[i].raw)
				res.add(reqs[i].kind, status, err)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	// The server's ReadHeaderTimeout (10 s) must cut every slow client off;
	// they are given twice that before they are stopped.
	for end := time.Now().Add(20 * time.Second); cut.Load() < slow && time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
	}
	stopSlow()
	waitSlow()
	if ctx.Err() != nil {
		t.Fatalf("the load did not finish within its time bound")
	}
	hwm := k.vmHWM()
	t.Logf("%d requests in %v (%.0f/s), %d workers, %d slow clients (%d cut off)",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), workers,
		slow, cut.Load())
	t.Logf("peak RSS (VmHWM) %d MiB, budget %d MiB", hwm>>10, loadRSSBudget>>20)
	checkLoad(t, res)
	if cut.Load() != slow {
		t.Errorf("%d of %d slow clients were cut off, want all", cut.Load(), slow)
	}
	if hwm < 0 || hwm<<10 > loadRSSBudget {
		t.Errorf("VmHWM = %d KiB, want under %d MiB", hwm, loadRSSBudget>>20)
	}
}

// checkLoad prints the statuses by kind and fails on any answer a kind must
// not get.
func checkLoad(t *testing.T, res *loadResult) {
	t.Helper()
	for k, name := range loadKindNames {
		kind := loadKind(k)
		t.Logf("%-9s statuses %v, connection errors %d", name, res.statuses[kind],
			res.errors[kind])
		if res.errors[kind] > 0 {
			t.Errorf("%s: %d requests got no answer", name, res.errors[kind])
		}
		for status, n := range res.statuses[kind] {
			bad := false
			switch kind {
			case loadValid:
				bad = status != http.StatusOK
			case loadMalformed:
				bad = status < 400 || status > 499
			case loadBomb:
				bad = status != http.StatusUnprocessableEntity
			case loadMissing:
				bad = status != http.StatusNotFound
			}
			if bad {
				t.Errorf("%s: %d answers with status %d", name, n, status)
			}
		}
	}
}
