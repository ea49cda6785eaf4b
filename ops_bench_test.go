package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkHit measures a cache hit through the handler with and without
// metrics, to show what the counters and the request trace cost.
func BenchmarkHit(b *testing.B) {
	for _, withMetrics := range []bool{false, true} {
		name := "no-metrics"
		if withMetrics {
			name = "metrics"
		}
		b.Run(name, func(b *testing.B) {
			photos, _ := filepath.Abs(filepath.Join("testdata", "photos"))
			s, _ := opsServer(b, func(c *Config) {
				c.Origins["default"] = map[string]*ClusterConfig{"t": {IPs: []string{photos}}}
			})
			s.log = slog.New(slog.DiscardHandler)
			if !withMetrics {
				s.metrics = nil
			}
			const target = "/street-500.png/resize-20x.png"
			if rec := serveOnce(b, s, "GET", target); rec.Code != 200 {
				b.Fatalf("GET %s = %d", target, rec.Code)
			}
			b.ResetTimer()
			for range b.N {
				serveOnce(b, s, "GET", target)
			}
		})
	}
}

// BenchmarkLargeFile sends a 8 MiB file over loopback with and without the
// per-write deadlines of write_timeout.
func BenchmarkLargeFile(b *testing.B) {
	file := filepath.Join(b.TempDir(), "big.bin")
	os.WriteFile(file, make([]byte, 8<<20), 0o644)
	for _, timeout := range []time.Duration{0, time.Minute} {
		b.Run("write_timeout="+timeout.String(), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.ServeFile(w, r, file)
			})}
			go srv.Serve(stallListener(ln, timeout))
			defer srv.Close()
			url := "http://" + ln.Addr().String() + "/"
			b.SetBytes(8 << 20)
			for range b.N {
				resp, err := http.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
