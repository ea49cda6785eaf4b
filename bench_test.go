// bench_test.go measures the pipeline on the real 1080p photo, beside a plain baseline.
package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"testing"

	xdraw "golang.org/x/image/draw"
)

func benchPhoto(b *testing.B) []byte {
	b.Helper()
	src, err := os.ReadFile("testdata/photos/flower-1920x1080.jpg")
	if err != nil {
		b.Fatal(err)
	}
	return src
}

// BenchmarkTransform is the whole pipeline: 1080p JPEG to 300 and 1200 px wide.
func BenchmarkTransform(b *testing.B) {
	src := benchPhoto(b)
	webpInit()
	for _, w := range []int{300, 1200} {
		for _, f := range []string{"jpeg", "png", "webp"} {
			b.Run(fmt.Sprintf("%d/%s", w, f), func(b *testing.B) {
				opt := imageOptions{Width: w, Format: f, Quality: 80, WebPMethod: 4}
				var n int
				for b.Loop() {
					out, _, err := transformImage(context.Background(), src, opt)
					if err != nil {
						b.Fatal(err)
					}
					n = len(out)
				}
				b.ReportMetric(float64(n), "bytes")
			})
		}
	}
}

// BenchmarkPlainPipeline is issue 7's reference: image/jpeg decode, ApproxBiLinear,
// image/jpeg encode at q80.
func BenchmarkPlainPipeline(b *testing.B) {
	src := benchPhoto(b)
	for _, w := range []int{300, 1200} {
		b.Run(fmt.Sprint(w), func(b *testing.B) {
			for b.Loop() {
				img, err := jpeg.Decode(bytes.NewReader(src))
				if err != nil {
					b.Fatal(err)
				}
				h := img.Bounds().Dy() * w / img.Bounds().Dx()
				dst := image.NewRGBA(image.Rect(0, 0, w, h))
				xdraw.ApproxBiLinear.Scale(dst, dst.Rect, img, img.Bounds(), xdraw.Src, nil)
				var buf bytes.Buffer
				if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 80}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkResize is the scaling step alone, from the decoded photo.
func BenchmarkResize(b *testing.B) {
	img, err := jpeg.Decode(bytes.NewReader(benchPhoto(b)))
	if err != nil {
		b.Fatal(err)
	}
	info := &sourceInfo{orientation: 1}
	for _, w := range []int{300, 1200} {
		b.Run(fmt.Sprint(w), func(b *testing.B) {
			for b.Loop() {
				if _, err := renderFrame(context.Background(), img, info,
					imageOptions{Width: w}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodePNG compares compression levels on a 300 px photo thumbnail.
func BenchmarkEncodePNG(b *testing.B) {
	img, err := jpeg.Decode(bytes.NewReader(benchPhoto(b)))
	if err != nil {
		b.Fatal(err)
	}
	thumb, err := renderFrame(context.Background(), img, &sourceInfo{orientation: 1},
		imageOptions{Width: 300})
	if err != nil {
		b.Fatal(err)
	}
	for _, lv := range []png.CompressionLevel{png.BestSpeed, png.DefaultCompression} {
		b.Run(fmt.Sprint(lv), func(b *testing.B) {
			enc := png.Encoder{CompressionLevel: lv}
			var n int
			for b.Loop() {
				var buf bytes.Buffer
				if err := enc.Encode(&buf, thumb); err != nil {
					b.Fatal(err)
				}
				n = buf.Len()
			}
			b.ReportMetric(float64(n), "bytes")
		})
	}
}

// BenchmarkPreShrink is the box step alone: the decoded 1080p photo by 3×3.
func BenchmarkPreShrink(b *testing.B) {
	img, err := jpeg.Decode(bytes.NewReader(benchPhoto(b)))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		preShrink(img, 3, 3)
	}
}

// BenchmarkEncodeWebP measures the lossy encoder per method on 300 and 1200 px
// thumbnails of the photo, to choose webp_method.
func BenchmarkEncodeWebP(b *testing.B) {
	img, err := jpeg.Decode(bytes.NewReader(benchPhoto(b)))
	if err != nil {
		b.Fatal(err)
	}
	webpInit()
	for _, w := range []int{300, 1200} {
		thumb, err := renderFrame(context.Background(), img, &sourceInfo{orientation: 1},
			imageOptions{Width: w})
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range []int{0, 2, 4, 6} {
			b.Run(fmt.Sprintf("%d/method%d", w, m), func(b *testing.B) {
				var n int
				for b.Loop() {
					var buf bytes.Buffer
					opt := imageOptions{Quality: 80, WebPMethod: m}
					if err := encodeWebP(&buf, thumb, opt); err != nil {
						b.Fatal(err)
					}
					n = buf.Len()
				}
				b.ReportMetric(float64(n), "bytes")
			})
		}
	}
}

// BenchmarkSumPlane is the 4:2:0 box's inner step on a 1080p plane, per factor.
func BenchmarkSumPlane(b *testing.B) {
	pix := make([]byte, 1920*1080)
	for i := range pix {
		pix[i] = byte(i)
	}
	for _, k := range []int{2, 3, 4, 6} {
		b.Run(fmt.Sprint(k), func(b *testing.B) {
			for b.Loop() {
				sumPlane(pix, 1920, 1920/k, 1080/k, k, k)
			}
		})
	}
}
