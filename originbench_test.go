// originbench_test.go measures Fetch against origin servers on 127.0.0.1.
package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// benchOrigins returns an origin of two HTTP clusters, one holding probedPath,
// and a local one.
func benchOrigins(b *testing.B) (web, local *Origin) {
	b.Helper()
	body := baselineJPEG(b)
	has := httptest.NewServer(memFilesHandler(map[string][]byte{probedPath: body}))
	b.Cleanup(has.Close)
	not := httptest.NewServer(http.NotFoundHandler())
	b.Cleanup(not.Close)
	web, err := newOrigin("bench", map[string]*ClusterConfig{
		"has": clusterOf(has.Listener.Addr().String()),
		"not": clusterOf(not.Listener.Addr().String()),
	}, originOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(web.Close)
	local, err = newOrigin("local", map[string]*ClusterConfig{"c": clusterOf("./testdata/cases/jpeg")},
		originOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(local.Close)
	return web, local
}

func benchFetch(b *testing.B, o *Origin, path string, forget bool) {
	sink := newFileSink(b)
	b.ReportAllocs()
	for b.Loop() {
		if forget {
			o.memo.forget(path)
		}
		if _, err := o.Fetch(context.Background(), path, validators{}, sink); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchProbeRound is a fetch of an unknown location: HEAD to both
// clusters, then a GET.
func BenchmarkFetchProbeRound(b *testing.B) {
	web, _ := benchOrigins(b)
	benchFetch(b, web, probedPath, true)
}

// BenchmarkFetchRemembered is a fetch of a remembered location: one GET.
func BenchmarkFetchRemembered(b *testing.B) {
	web, _ := benchOrigins(b)
	benchFetch(b, web, probedPath, false)
}

// BenchmarkFetchLocal is a fetch from a local directory node.
func BenchmarkFetchLocal(b *testing.B) {
	_, local := benchOrigins(b)
	benchFetch(b, local, "/baseline.jpg", false)
}
