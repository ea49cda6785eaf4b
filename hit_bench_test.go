package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkHandlerHit measures the handler alone serving cache hits: a
// source and a variant, with the access log discarded.
func BenchmarkHandlerHit(b *testing.B) {
	t := &testing.T{}
	o := newTestOrigin(t)
	defer o.Close()
	o.put("/p.jpg", testJPEG(t, 640, 480), "Cache-Control", "max-age=3600")
	k := newKatanaTOML(t, defaultConfigTOML, func(c *Config) {
		c.CacheDir = b.TempDir()
		c.Origins["default"] = map[string]*ClusterConfig{"t": {IPs: []string{o.node()}}}
	})
	defer k.Close()
	for _, p := range []string{"/p.jpg", "/p.jpg/resize-300x-q80.jpeg"} {
		b.Run(p, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, p, nil)
			k.s.ServeHTTP(httptest.NewRecorder(), req)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				w := httptest.NewRecorder()
				k.s.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
