//go:build ignore

// plain_pipeline is the reference for Katana's load test: the plain pure-Go
// pipeline (image/jpeg decode, x/image/draw ApproxBiLinear, image/jpeg
// encode) behind net/http, resizing one photo to 300 px wide at q80 for
// every request, with nothing cached.
//
//	go run scripts/plain_pipeline.go -listen 127.0.0.1:18103 -photo testdata/photos/flower-1920x1080.jpg
package main

import (
	"bytes"
	"flag"
	"image"
	"image/jpeg"
	"log"
	"net/http"
	"os"

	"golang.org/x/image/draw"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18103", "address")
	photo := flag.String("photo", "testdata/photos/flower-1920x1080.jpg", "JPEG to resize")
	width := flag.Int("width", 300, "output width")
	flag.Parse()
	src, err := os.ReadFile(*photo)
	if err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		img, err := jpeg.Decode(bytes.NewReader(src))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		b := img.Bounds()
		h := (b.Dy()**width + b.Dx()/2) / b.Dx()
		dst := image.NewRGBA(image.Rect(0, 0, *width, h))
		draw.ApproxBiLinear.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
		var out bytes.Buffer
		jpeg.Encode(&out, dst, &jpeg.Options{Quality: 80})
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(out.Bytes())
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
