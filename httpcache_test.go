package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptedOrigin answers each request with a function of its number
// (1-based) and records what it received.
type scriptedOrigin struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
	hold func() // when set, called before answering
}

func newScriptedOrigin(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *scriptedOrigin {
	t.Helper()
	o := &scriptedOrigin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.reqs = append(o.reqs, r.Clone(r.Context()))
		n := len(o.reqs)
		hold := o.hold
		o.mu.Unlock()
		if hold != nil {
			hold()
		}
		answer(n, w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *scriptedOrigin) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.reqs)
}

func (o *scriptedOrigin) request(i int) *http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reqs[i]
}

// proxyConf is a pass-through shared cache of everything, like cache-tests.toml.
const proxyConf = `
external_expires = 0
[[routing]]
[routing.proxy]
url_re = '(?P<path>/.*)'
origin_tmpl = "{path}"
cache_path = "/c{path}"
methods = ["POST", "PUT", "DELETE"]
cache_key_query = true
pass_through = true
`

func newProxyKatana(t *testing.T, o *scriptedOrigin) *testKatana {
	t.Helper()
	return newKatanaTOML(t, proxyConf, func(c *Config) {
		c.Origins = map[string]map[string]*ClusterConfig{
			"default": {"o": {IPs: []string{strings.TrimPrefix(o.URL, "http://")}}},
		}
	})
}

// later moves the cache's clock forward by d.
func (k *testKatana) later(d time.Duration) {
	now := k.s.now()
	k.s.now = func() time.Time { return now.Add(d) }
}

func TestOrigin304UpdatesStoredHeaders(t *testing.T) {
	o := newScriptedOrigin(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"a"`)
		if n == 1 {
			w.Header().Set("Cache-Control", "max-age=1")
			w.Header().Set("X-Version", "1")
			io.WriteString(w, "body one")
			return
		}
		w.Header().Set("Cache-Control", "max-age=100")
		w.Header().Set("X-Version", "2")
		w.WriteHeader(http.StatusNotModified)
	})
	k := newProxyKatana(t, o)
	k.get(t, "/x")
	k.later(2 * time.Second)

	resp, body := k.get(t, "/x")
	wantStatus(t, resp, body, http.StatusOK)
	if string(body) != "body one" || resp.Header.Get("X-Version") != "2" {
		t.Errorf("after 304: body %q, X-Version %q; want the stored body and the new header",
			body, resp.Header.Get("X-Version"))
	}
	if got := o.request(1).Header.Get("If-None-Match"); got != `"a"` {
		t.Errorf("revalidation If-None-Match = %q, want the stored ETag", got)
	}
	k.later(3 * time.Second)
	k.get(t, "/x")
	if got := o.count(); got != 2 {
		t.Errorf("origin requests = %d, want 2: the 304's max-age=100 keeps it fresh", got)
	}
	if e := k.s.cache.lookup("c/x"); e == nil || e.Header.Get("X-Version") != "2" {
		t.Errorf("stored entry after 304 = %+v, want X-Version 2 on disk", e)
	}
}

func TestStaleIfErrorWithOriginStopped(t *testing.T) {
	for _, tt := range []struct {
		cc        string
		wantStale bool
	}{
		{"max-age=1, stale-if-error=60", true},
		{"max-age=1", true}, // serve_stale_on_error, on by default
		{"max-age=1, must-revalidate", false},
	} {
		t.Run(tt.cc, func(t *testing.T) {
			o := newScriptedOrigin(t, func(n int, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", tt.cc)
				io.WriteString(w, "kept")
			})
			k := newProxyKatana(t, o)
			k.get(t, "/s")
			o.Close()
			k.later(10 * time.Second)
			resp, body := k.get(t, "/s")
			if tt.wantStale {
				wantStatus(t, resp, body, http.StatusOK)
				if string(body) != "kept" {
					t.Errorf("stale body = %q", body)
				}
				if resp.Header.Get("Warning") != "" || resp.Header.Get("Age") == "" {
					t.Errorf("stale answer headers: Warning %q, Age %q", resp.Header.Get("Warning"),
						resp.Header.Get("Age"))
				}
			} else if resp.StatusCode < 500 {
				t.Errorf("must-revalidate with the origin down = %d, want 502 or 504", resp.StatusCode)
			}
		})
	}
}

func TestVarySelectsStoredResponse(t *testing.T) {
	for _, field := range []string{"Accept-Encoding", "Accept"} {
		t.Run(field, func(t *testing.T) {
			o := newScriptedOrigin(t, func(n int, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=100")
				w.Header().Set("Vary", field)
				fmt.Fprintf(w, "for %s", r.Header.Get(field))
			})
			k := newProxyKatana(t, o)
			_, b1 := k.get(t, "/v", field, "a")
			_, b2 := k.get(t, "/v", field, "a")
			if o.count() != 1 || !bytes.Equal(b1, b2) {
				t.Errorf("same %s: origin requests %d, want 1", field, o.count())
			}
			_, b3 := k.get(t, "/v", field, "b")
			if o.count() != 2 || string(b3) != "for b" {
				t.Errorf("other %s: origin requests %d, body %q; want 2 and the origin's", field, o.count(), b3)
			}
		})
	}
	t.Run("star", func(t *testing.T) {
		o := newScriptedOrigin(t, func(n int, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=100")
			w.Header().Set("Vary", "*")
			io.WriteString(w, "x")
		})
		k := newProxyKatana(t, o)
		k.get(t, "/v")
		k.get(t, "/v")
		if o.count() != 2 {
			t.Errorf("Vary: * reused: origin requests %d, want 2", o.count())
		}
	})
}

func TestPrivateAndNoStoreNeverOnDisk(t *testing.T) {
	for _, cc := range []string{"private, max-age=100", "no-store", "max-age=100"} {
		t.Run(cc, func(t *testing.T) {
			o := newScriptedOrigin(t, func(n int, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", cc)
				io.WriteString(w, "secret")
			})
			k := newProxyKatana(t, o)
			for range 2 {
				resp, body := k.get(t, "/p")
				wantStatus(t, resp, body, http.StatusOK)
				if string(body) != "secret" {
					t.Errorf("body = %q", body)
				}
			}
			stored := len(cacheFiles(t, k.dir)) > 0
			if want := cc == "max-age=100"; stored != want {
				t.Errorf("%s: stored = %v (%v), want %v", cc, stored, cacheFiles(t, k.dir), want)
			}
			if want := map[bool]int{true: 1, false: 2}[stored]; o.count() != want {
				t.Errorf("origin requests = %d, want %d", o.count(), want)
			}
			tmp, _ := os.ReadDir(filepath.Join(k.dir, reservedDir, "tmp"))
			if len(tmp) != 0 {
				t.Errorf("temporary files left: %d", len(tmp))
			}
		})
	}
}

func TestFiftyConcurrentMissesOneOriginRequest(t *testing.T) {
	const n = 50
	o := newScriptedOrigin(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=100")
		io.WriteString(w, strings.Repeat("z", 10000))
	})
	k := newProxyKatana(t, o)
	o.hold = func() {
		for i := 0; i < 500 && k.active.Load() < n; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := k.get(t, "/many")
			if resp.StatusCode != 200 || len(body) != 10000 {
				t.Errorf("status %d, %d bytes", resp.StatusCode, len(body))
			}
		}()
	}
	wg.Wait()
	if got := o.count(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
}

func TestRequestDirectives(t *testing.T) {
	o := newScriptedOrigin(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=100")
		w.Header().Set("ETag", `"r"`)
		fmt.Fprintf(w, "v%d", n)
	})
	k := newProxyKatana(t, o)
	resp, body := k.get(t, "/r", "Cache-Control", "only-if-cached")
	wantStatus(t, resp, body, http.StatusGatewayTimeout)
	k.get(t, "/r")
	tests := []struct {
		header   []string
		fromSelf bool // answered without asking the origin
	}{
		{nil, true},
		{[]string{"Cache-Control", "only-if-cached"}, true},
		{[]string{"Cache-Control", "max-age=0"}, false},
		{[]string{"Cache-Control", "no-cache"}, false},
		{[]string{"Pragma", "no-cache"}, false},
		{[]string{"Cache-Control", "min-fresh=1000"}, false},
	}
	for _, tt := range tests {
		before := o.count()
		resp, body := k.get(t, "/r", tt.header...)
		wantStatus(t, resp, body, http.StatusOK)
		if self := o.count() == before; self != tt.fromSelf {
			t.Errorf("%v: answered from the cache = %v, want %v", tt.header, self, tt.fromSelf)
		}
	}
}

func TestUnsafeMethodInvalidates(t *testing.T) {
	o := newScriptedOrigin(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "posted %s", b)
			return
		}
		w.Header().Set("Cache-Control", "max-age=100")
		fmt.Fprintf(w, "get %d", n)
	})
	k := newProxyKatana(t, o)
	k.get(t, "/u")
	k.get(t, "/u")
	if o.count() != 1 {
		t.Fatalf("origin requests = %d, want 1", o.count())
	}
	resp, err := http.Post(k.URL+"/u", "text/plain", strings.NewReader("data"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "posted data" {
		t.Errorf("POST answer = %q, want the origin's", b)
	}
	_, body := k.get(t, "/u")
	if string(body) != "get 3" {
		t.Errorf("GET after POST = %q, want a fresh answer from the origin", body)
	}
	resp2, body2 := k.do(t, "PATCH", "/u")
	wantStatus(t, resp2, body2, http.StatusMethodNotAllowed)
	if got := resp2.Header.Get("Allow"); got != "GET, HEAD, DELETE, POST, PUT" {
		t.Errorf("Allow = %q", got)
	}
}

func TestPassThroughStatusesAndHeaders(t *testing.T) {
	o := newScriptedOrigin(t, func(n int, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/gone":
			w.Header().Set("Cache-Control", "max-age=100")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "no such page")
		case "/boom":
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "boom")
		default:
			w.Header().Set("Connection", "X-Hop")
			w.Header().Set("X-Hop", "1")
			w.Header().Set("X-End", "2")
			w.Header().Set("Cache-Control", "max-age=100")
			io.WriteString(w, "ok")
		}
	})
	k := newProxyKatana(t, o)
	for range 2 {
		resp, body := k.get(t, "/gone")
		wantStatus(t, resp, body, http.StatusNotFound)
		if string(body) != "no such page" {
			t.Errorf("404 body = %q, want the origin's", body)
		}
	}
	resp, body := k.get(t, "/boom")
	wantStatus(t, resp, body, http.StatusInternalServerError)

	resp, _ = k.get(t, "/h", "Connection", "X-Client-Hop", "X-Client-Hop", "1", "X-Custom", "c")
	if resp.Header.Get("X-Hop") != "" || resp.Header.Get("X-End") != "2" || resp.Header.Get("Age") == "" {
		t.Errorf("response headers = %v: want X-Hop removed, X-End kept, Age set", resp.Header)
	}
	up := o.request(o.count() - 1)
	if up.Header.Get("X-Client-Hop") != "" || up.Header.Get("X-Custom") != "c" {
		t.Errorf("upstream request headers = %v: want X-Client-Hop removed, X-Custom kept", up.Header)
	}
	if got := o.count(); got != 3 {
		t.Errorf("origin requests = %d, want 3 (the cacheable 404 once)", got)
	}
}

func TestAuthorizationNotReused(t *testing.T) {
	for _, tt := range []struct {
		cc     string
		reused bool
	}{{"max-age=100", false}, {"max-age=100, public", true}, {"s-maxage=100", true}} {
		o := newScriptedOrigin(t, func(n int, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", tt.cc)
			io.WriteString(w, "x")
		})
		k := newProxyKatana(t, o)
		k.get(t, "/a", "Authorization", "Basic eDp5")
		k.get(t, "/a", "Authorization", "Basic eDp5")
		if reused := o.count() == 1; reused != tt.reused {
			t.Errorf("%s: reused = %v, want %v", tt.cc, reused, tt.reused)
		}
	}
}

func TestStaleWhileRevalidateRefreshesOnce(t *testing.T) {
	release := make(chan struct{})
	o := newScriptedOrigin(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n > 1 {
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=60")
		fmt.Fprintf(w, "v%d", n)
	})
	k := newProxyKatana(t, o)
	k.get(t, "/w")
	k.later(5 * time.Second)
	for range 5 {
		resp, body := k.get(t, "/w")
		wantStatus(t, resp, body, http.StatusOK)
		if string(body) != "v1" {
			t.Errorf("within stale-while-revalidate: body %q, want the stale v1 at once", body)
		}
	}
	close(release)
	for i := 0; i < 200 && o.count() < 2; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if got := o.count(); got != 2 {
		t.Errorf("origin requests = %d, want 2: one background refresh", got)
	}
}
