// resize_test.go checks geometry, gravity, the box pre-shrink and alpha weighting.
package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand"
	"os"
	"testing"

	xdraw "golang.org/x/image/draw"
)

func TestPlanGeometry(t *testing.T) {
	for _, tc := range []struct {
		name       string
		w, h       int
		opt        imageOptions
		outW, outH int // 0, 0: no resize
	}{
		{"derived height never 0", 10000, 1, imageOptions{Width: 100}, 100, 1},
		{"derived width never 0", 1, 10000, imageOptions{Height: 100}, 1, 100},
		{"derived height rounds", 1164, 776, imageOptions{Width: 400}, 400, 267},
		{"derived width rounds", 1164, 776, imageOptions{Height: 400}, 600, 400},
		{"inside never enlarges", 100, 50, imageOptions{Width: 200}, 0, 0},
		{"inside never enlarges box", 100, 50, imageOptions{Width: 200, Height: 100}, 0, 0},
		{"inside height limits", 100, 50, imageOptions{Width: 200, Height: 10}, 20, 10},
		{"inside width limits", 100, 50, imageOptions{Width: 50, Height: 50}, 50, 25},
		{"no size", 100, 50, imageOptions{}, 0, 0},
		{"fill crops", 100, 50, imageOptions{Width: 20, Height: 20, Fit: "fill"}, 20, 20},
		{"fill enlarges", 1, 1, imageOptions{Width: 100, Height: 100, Fit: "fill"}, 100, 100},
		{"fill one side", 100, 50, imageOptions{Width: 20, Fit: "fill"}, 20, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := planGeometry(tc.w, tc.h, tc.opt)
			gotW, gotH := g.outW, g.outH
			if !g.resizes(tc.w, tc.h) {
				gotW, gotH = 0, 0
			}
			if gotW != tc.outW || gotH != tc.outH {
				t.Errorf("planGeometry(%dx%d, %+v) = %dx%d, want %dx%d",
					tc.w, tc.h, tc.opt, gotW, gotH, tc.outW, tc.outH)
			}
		})
	}
}

// bands returns a w×h image of three equal bands (vertical when across, else
// horizontal): red, lime, blue.
func bands(w, h int, across bool) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := 3 * y / h
			if across {
				i = 3 * x / w
			}
			m.SetNRGBA(x, y, [3]color.NRGBA{red, lime, blue}[i])
		}
	}
	return m
}

func TestFillGravity(t *testing.T) {
	for _, tc := range []struct {
		gravity string
		across  bool
		want    color.NRGBA
	}{
		{"", true, lime}, {"center", true, lime}, {"left", true, red}, {"right", true, blue},
		{"", false, lime}, {"top", false, red}, {"bottom", false, blue},
	} {
		t.Run(tc.gravity, func(t *testing.T) {
			w, h := 90, 30
			if !tc.across {
				w, h = h, w
			}
			src := pngWithEXIF(t, bands(w, h, tc.across), 1)
			opt := suffixOptions("resize-20x20-f.png")
			opt.Gravity = tc.gravity
			out, _, err := transformImage(context.Background(), src, opt)
			if err != nil {
				t.Fatal(err)
			}
			// The crop is exactly one band: every pixel has its colour.
			all(size(20, 20), everywhere("band colour", func(c color.NRGBA) bool {
				return nearNRGBA(c, tc.want, tolPNG)
			}))(t, out)
		})
	}
}

// TestBoxYCbCrMatchesRGBA: averaging YCbCr before conversion gives the colours of
// converting first, for every chroma subsampling.
func TestBoxYCbCrMatchesRGBA(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, r := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444,
		image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411,
		image.YCbCrSubsampleRatio410} {
		for _, p := range []image.Point{{3, 5}, {4, 6}} {
			testBoxYCbCr(t, rng, image.NewYCbCr(image.Rect(p.X, p.Y, p.X+37, p.Y+29), r))
		}
	}
}

// testBoxYCbCr fills m with smooth random content (keeping conversion clamping out of
// the comparison) and compares both box paths with converting first.
func testBoxYCbCr(t *testing.T, rng *rand.Rand, m *image.YCbCr) {
	t.Helper()
	for i := range m.Y {
		m.Y[i] = uint8(96 + rng.Intn(64))
	}
	for i := range m.Cb {
		m.Cb[i], m.Cr[i] = uint8(112+rng.Intn(32)), uint8(112+rng.Intn(32))
	}
	t.Run(fmt.Sprint(m.SubsampleRatio, m.Rect.Min), func(t *testing.T) {
		// 3x2 takes the general path; even factors the 4:2:0 plane path when it applies.
		for _, k := range []image.Point{{3, 2}, {4, 2}, {2, 4}, {6, 6}, {10, 2}} {
			got := preShrink(m, k.X, k.Y).(*image.RGBA)
			want := preShrink(toRGBA(m), k.X, k.Y).(*image.RGBA)
			wantSize(t, got, 37/k.X, 29/k.Y)
			for i := range got.Pix {
				if absDiff(got.Pix[i], want.Pix[i]) > 2 {
					t.Fatalf("k=%v pix[%d] = %d, want %d ±2", k, i, got.Pix[i], want.Pix[i])
				}
			}
		}
	})
}

// TestBoxAlphaWeighted: transparent green pixels add nothing but transparency.
func TestBoxAlphaWeighted(t *testing.T) {
	m := image.NewNRGBA(image.Rect(0, 0, 2, 2))
	m.SetNRGBA(0, 0, white)
	m.SetNRGBA(1, 0, color.NRGBA{0, 255, 0, 0})
	m.SetNRGBA(0, 1, color.NRGBA{0, 255, 0, 0})
	m.SetNRGBA(1, 1, white)
	got := preShrink(m, 2, 2).(*image.RGBA)
	if want := (color.RGBA{128, 128, 128, 128}); got.RGBAAt(0, 0) != want {
		t.Errorf("preShrink(half white, half clear green) = %v, want %v", got.RGBAAt(0, 0), want)
	}
}

// TestPhotoResize runs the real photo through both resampling paths and compares the
// result with x/image/draw's CatmullRom applied to the whole decoded photo.
func TestPhotoResize(t *testing.T) {
	src, err := os.ReadFile("testdata/photos/flower-1920x1080.jpg")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := jpeg.Decode(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	// 100 px: box by 9 (2x margin), CatmullRom on 213x120. 300 px: box by 6 (1x
	// margin), CatmullRom on 320x180. 1200 px: no box, ApproxBiLinear on the photo.
	for _, tc := range []struct{ w, h int }{{100, 56}, {300, 169}, {1200, 675}} {
		t.Run(fmt.Sprint(tc.w), func(t *testing.T) {
			out, _, err := transformImage(context.Background(), src,
				imageOptions{Width: tc.w, Format: "png"})
			if err != nil {
				t.Fatal(err)
			}
			img := decodeOutput(t, out)
			wantSize(t, img, tc.w, tc.h)
			want := image.NewRGBA(image.Rect(0, 0, tc.w, tc.h))
			xdraw.CatmullRom.Scale(want, want.Rect, ref, ref.Bounds(), xdraw.Src, nil)
			var sum, n float64
			for y := 0; y < tc.h; y++ {
				for x := 0; x < tc.w; x++ {
					g, w := at(img, x, y), want.RGBAAt(x, y)
					sum += float64(absDiff(g.R, w.R) + absDiff(g.G, w.G) + absDiff(g.B, w.B))
					n += 3
				}
			}
			if mean := sum / n; mean > 3 {
				t.Errorf("mean difference from CatmullRom on the full photo = %.2f, want ≤ 3",
					mean)
			}
		})
	}
}

func TestPlanResample(t *testing.T) {
	for _, tc := range []struct {
		w, h, outW int
		kx, ky     int
		kernel     xdraw.Interpolator
	}{
		{1920, 1080, 100, 9, 9, xdraw.CatmullRom},
		{1920, 1080, 300, 6, 6, xdraw.CatmullRom},
		{1920, 1080, 1200, 1, 1, xdraw.ApproxBiLinear},
		{64, 64, 21, 1, 1, xdraw.CatmullRom},
		{10000, 1, 100, 50, 1, xdraw.CatmullRom},
	} {
		g := planGeometry(tc.w, tc.h, imageOptions{Width: tc.outW})
		p := g.planResample(tc.w, tc.h)
		if p.kx != tc.kx || p.ky != tc.ky || p.kernel != tc.kernel {
			t.Errorf("planResample(%dx%d to %d) = %d, %d, %T; want %d, %d, %T", tc.w, tc.h,
				tc.outW, p.kx, p.ky, p.kernel, tc.kx, tc.ky, tc.kernel)
		}
	}
}
