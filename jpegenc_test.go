// jpegenc_test.go checks writeJPEG by decoding its output with image/jpeg, and benchmarks it.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// smoothImage is a photo-like test picture: colour gradients, a soft wave and a little
// deterministic noise, so that the PSNR bounds measure the codec and not a pathological
// input.
func smoothImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(uint64(w), uint64(h)))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			n := func() float64 { return float64(rng.IntN(9) - 4) }
			fx, fy := float64(x)/float64(max(w-1, 1)), float64(y)/float64(max(h-1, 1))
			r := 128 + 90*math.Sin(float64(x)*0.15+float64(y)*0.05) + n()
			g := 40 + 180*fx + n()
			b := 220 - 170*fy + n()
			img.SetRGBA(x, y, color.RGBA{clamp8(r), clamp8(g), clamp8(b), 255})
		}
	}
	return img
}

func clamp8(v float64) uint8 { return uint8(min(max(math.Round(v), 0), 255)) }

// toGray returns img's luma as an *image.Gray.
func toGray(img *image.RGBA) *image.Gray {
	g := image.NewGray(img.Rect)
	for y := img.Rect.Min.Y; y < img.Rect.Max.Y; y++ {
		for x := img.Rect.Min.X; x < img.Rect.Max.X; x++ {
			g.Set(x, y, img.At(x, y))
		}
	}
	return g
}

// toYCbCr converts img to an *image.YCbCr of the given ratio; each chroma sample is the
// chroma of the top-left pixel it covers.
func toYCbCr(img *image.RGBA, ratio image.YCbCrSubsampleRatio) *image.YCbCr {
	out := image.NewYCbCr(img.Rect, ratio)
	for y := img.Rect.Min.Y; y < img.Rect.Max.Y; y++ {
		for x := img.Rect.Min.X; x < img.Rect.Max.X; x++ {
			p := img.RGBAAt(x, y)
			yy, cb, cr := color.RGBToYCbCr(p.R, p.G, p.B)
			out.Y[out.YOffset(x, y)] = yy
			out.Cb[out.COffset(x, y)] = cb
			out.Cr[out.COffset(x, y)] = cr
		}
	}
	return out
}

// encodeDecode runs writeJPEG and decodes the result with image/jpeg.
func encodeDecode(t testing.TB, img image.Image, opt jpegEncodeOptions) ([]byte, image.Image) {
	t.Helper()
	var buf bytes.Buffer
	if err := writeJPEG(&buf, img, opt); err != nil {
		t.Fatalf("writeJPEG(%T %v, %+v) = %v", img, img.Bounds(), opt, err)
	}
	dec, err := jpeg.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("jpeg.Decode(writeJPEG(%T %v, %+v)) = %v", img, img.Bounds(), opt, err)
	}
	if got, want := dec.Bounds().Size(), img.Bounds().Size(); got != want {
		t.Fatalf("decoded size = %v, want %v", got, want)
	}
	return buf.Bytes(), dec
}

// wantModel checks that dec is what a file of the given subsampling decodes to.
func wantModel(t *testing.T, dec image.Image, gray bool, sub string) {
	t.Helper()
	switch d := dec.(type) {
	case *image.Gray:
		if !gray {
			t.Errorf("decoded %T, want *image.YCbCr %s", dec, sub)
		}
	case *image.YCbCr:
		want := image.YCbCrSubsampleRatio420
		if sub == "444" {
			want = image.YCbCrSubsampleRatio444
		}
		if gray || d.SubsampleRatio != want {
			t.Errorf("decoded YCbCr %v, want gray=%v subsampling %s", d.SubsampleRatio, gray, sub)
		}
	default:
		t.Errorf("decoded %T, want *image.Gray or *image.YCbCr", dec)
	}
}

// TestWriteJPEGRoundTrip encodes RGBA, Gray and YCbCr inputs of odd sizes at both
// subsamplings and the extreme qualities, and bounds the PSNR of the decoded image against
// the input. Bounds per quality, in dB (4:4:4 / 4:2:0; gray as 4:4:4): q1 ≥ 18 / 17,
// q50 ≥ 32 / 28, q90 ≥ 38 / 30, q100 ≥ 45 / 30; at q100 with 4:4:4 no channel of any pixel
// is more than 4 off. The 4:2:0 bounds stop at 30 dB because halved chroma, not the
// quantiser, limits them on this colourful input; an input that is itself subsampled gets
// them too (its blocky chroma is harder to code).
func TestWriteJPEGRoundTrip(t *testing.T) {
	type bound struct{ full, half float64 }
	bounds := map[int]bound{1: {18, 17}, 50: {32, 28}, 90: {38, 30}, 100: {45, 30}}
	kinds := []struct {
		name string
		make func(*image.RGBA) image.Image
		gray bool
	}{
		{"rgba", func(m *image.RGBA) image.Image { return m }, false},
		{"gray", func(m *image.RGBA) image.Image { return toGray(m) }, true},
		{"ycbcr444", func(m *image.RGBA) image.Image {
			return toYCbCr(m, image.YCbCrSubsampleRatio444)
		}, false},
		{"ycbcr420", func(m *image.RGBA) image.Image {
			return toYCbCr(m, image.YCbCrSubsampleRatio420)
		}, false},
		{"ycbcr422", func(m *image.RGBA) image.Image {
			return toYCbCr(m, image.YCbCrSubsampleRatio422)
		}, false},
		{"nrgba", func(m *image.RGBA) image.Image {
			n := image.NewNRGBA(m.Rect)
			copy(n.Pix, m.Pix)
			return n
		}, false},
	}
	for _, k := range kinds {
		for _, sz := range []image.Point{{1, 1}, {17, 9}, {300, 169}} {
			for _, sub := range []string{"444", "420"} {
				for _, q := range []int{1, 50, 90, 100} {
					name := fmt.Sprintf("%s/%dx%d/%s/q%d", k.name, sz.X, sz.Y, sub, q)
					t.Run(name, func(t *testing.T) {
						src := k.make(smoothImage(sz.X, sz.Y))
						opt := jpegEncodeOptions{Quality: q, Subsample: sub}
						_, dec := encodeDecode(t, src, opt)
						wantModel(t, dec, k.gray, sub)
						want := bounds[q].full
						if (sub == "420" || isSubsampled(src)) && !k.gray {
							want = bounds[q].half
						}
						ref, got := rgbaOf(src), rgbaOf(dec)
						if p := psnr(ref, got); p < want {
							t.Errorf("PSNR = %.1f dB, want ≥ %.0f", p, want)
						}
						if q == 100 && (sub == "444" || k.gray) && !isSubsampled(src) {
							if d := comparePixels(ref, got); d.max > 4 {
								t.Errorf("largest channel error = %d, want ≤ 4", d.max)
							}
						}
					})
				}
			}
		}
	}
}

// isSubsampled reports whether img carries less chroma than pixels (its own loss, which
// the encoder cannot undo).
func isSubsampled(img image.Image) bool {
	yc, ok := img.(*image.YCbCr)
	return ok && yc.SubsampleRatio != image.YCbCrSubsampleRatio444
}

// TestWriteJPEGYCbCrPlanes encodes YCbCr samples that lie outside the RGB gamut: a trip
// through RGB would clip them, the direct path keeps them. At q100 every decoded sample
// of every plane is within 2 of the input's.
func TestWriteJPEGYCbCrPlanes(t *testing.T) {
	tests := []struct {
		ratio image.YCbCrSubsampleRatio
		sub   string
	}{
		{image.YCbCrSubsampleRatio444, "444"},
		{image.YCbCrSubsampleRatio420, "420"},
	}
	for _, tt := range tests {
		t.Run(tt.sub, func(t *testing.T) {
			src := image.NewYCbCr(image.Rect(0, 0, 37, 21), tt.ratio)
			for i := range src.Y {
				src.Y[i] = uint8(20 + i%7)
			}
			for i := range src.Cb {
				src.Cb[i], src.Cr[i] = uint8(240+i%5), uint8(16+i%3)
			}
			_, dec := encodeDecode(t, src, jpegEncodeOptions{Quality: 100, Subsample: tt.sub})
			got, ok := dec.(*image.YCbCr)
			if !ok || got.SubsampleRatio != tt.ratio {
				t.Fatalf("decoded %T, want YCbCr %v", dec, tt.ratio)
			}
			for name, p := range map[string][2][]uint8{
				"Y": {src.Y, got.Y}, "Cb": {src.Cb, got.Cb}, "Cr": {src.Cr, got.Cr},
			} {
				if d := maxPlaneDiff(src, got, p[0], p[1], name != "Y"); d > 2 {
					t.Errorf("plane %s: largest difference = %d, want ≤ 2", name, d)
				}
			}
		})
	}
}

// maxPlaneDiff is the largest difference between the samples of planes a (of image ia) and
// b (of ib), walking chroma or luma coordinates.
func maxPlaneDiff(ia, ib *image.YCbCr, a, b []uint8, chroma bool) int {
	d := 0
	r := ia.Rect
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			oa, ob := ia.YOffset(x, y), ib.YOffset(x, y)
			if chroma {
				oa, ob = ia.COffset(x, y), ib.COffset(x, y)
			}
			d = max(d, absDiff(a[oa], b[ob]))
		}
	}
	return d
}

// TestWriteJPEGSubImage encodes views whose origin is not (0, 0), odd for YCbCr 4:2:0 (the
// chroma grid then straddles the output's), and compares with the same pixels copied out.
func TestWriteJPEGSubImage(t *testing.T) {
	full := smoothImage(41, 29)
	r := image.Rect(3, 5, 36, 26)
	want := rgbaOf(full.SubImage(r))
	views := map[string]image.Image{
		"rgba":     full.SubImage(r),
		"gray":     toGray(full).SubImage(r),
		"ycbcr420": toYCbCr(full, image.YCbCrSubsampleRatio420).SubImage(r),
	}
	for name, v := range views {
		for _, sub := range []string{"444", "420"} {
			t.Run(name+"/"+sub, func(t *testing.T) {
				_, dec := encodeDecode(t, v, jpegEncodeOptions{Quality: 95, Subsample: sub})
				ref := want
				if name == "gray" {
					ref = rgbaOf(toGray(want))
				}
				if p := psnr(ref, rgbaOf(dec)); p < 28 {
					t.Errorf("PSNR = %.1f dB, want ≥ 28", p)
				}
			})
		}
	}
}

// TestWriteJPEGEdgeReplication gives a 17×17 image one colour inside and another on its
// last row and column. With the edge repeated into the padding every block, luma and
// chroma, 4:4:4 and 4:2:0, is flat and comes back within rounding even at q60; padding with
// anything else would put an edge in the last blocks and ring into the picture.
func TestWriteJPEGEdgeReplication(t *testing.T) {
	inside, edge := color.RGBA{200, 60, 30, 255}, color.RGBA{20, 180, 240, 255}
	img := image.NewRGBA(image.Rect(0, 0, 17, 17))
	for y := 0; y < 17; y++ {
		for x := 0; x < 17; x++ {
			c := inside
			if x == 16 || y == 16 {
				c = edge
			}
			img.SetRGBA(x, y, c)
		}
	}
	inputs := map[string]image.Image{"rgba": img, "gray": toGray(img)}
	for name, src := range inputs {
		for _, sub := range []string{"444", "420"} {
			t.Run(name+"/"+sub, func(t *testing.T) {
				_, dec := encodeDecode(t, src, jpegEncodeOptions{Quality: 60, Subsample: sub})
				if d := comparePixels(rgbaOf(src), rgbaOf(dec)); d.max > 2 {
					t.Errorf("largest channel error = %d, want ≤ 2", d.max)
				}
			})
		}
	}
}

// TestWriteJPEGExtremeBlocks codes patterns with the largest coefficients a block can have
// (at q100 the quantiser is 1, so some AC values reach the 10-bit limit) and flat extremes.
func TestWriteJPEGExtremeBlocks(t *testing.T) {
	patterns := map[string]func(x, y int) uint8{
		"checker":  func(x, y int) uint8 { return uint8(255 * ((x + y) % 2)) },
		"stripes":  func(x, y int) uint8 { return uint8(255 * (x % 2)) },
		"bars4":    func(x, y int) uint8 { return uint8(255 * ((x / 2) % 2)) },
		"black":    func(x, y int) uint8 { return 0 },
		"white":    func(x, y int) uint8 { return 255 },
		"impulses": func(x, y int) uint8 { return uint8(255 * b2i(x%8 == 3 && y%8 == 5)) },
	}
	for name, f := range patterns {
		for _, q := range []int{1, 100} {
			t.Run(fmt.Sprintf("%s/q%d", name, q), func(t *testing.T) {
				img := image.NewRGBA(image.Rect(0, 0, 24, 16))
				for y := 0; y < 16; y++ {
					for x := 0; x < 24; x++ {
						v := f(x, y)
						img.SetRGBA(x, y, color.RGBA{v, v, 255 - v, 255})
					}
				}
				_, dec := encodeDecode(t, img, jpegEncodeOptions{Quality: q, Subsample: "444"})
				if q < 100 {
					return
				}
				if d := comparePixels(img, rgbaOf(dec)); d.max > 8 {
					t.Errorf("largest channel error = %d, want ≤ 8", d.max)
				}
			})
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestWriteJPEGStructure walks the markers of the output: SOI, JFIF APP0 and no other APPn,
// two quantisation tables, a baseline SOF0 with the expected sampling factors, four Huffman
// tables, one scan whose every 0xFF is stuffed, and EOI last.
func TestWriteJPEGStructure(t *testing.T) {
	tests := []struct {
		name     string
		img      image.Image
		sub      string
		sampling []byte // H<<4|V per component
	}{
		{"rgba-420", smoothImage(33, 17), "420", []byte{0x22, 0x11, 0x11}},
		{"rgba-444", smoothImage(33, 17), "444", []byte{0x11, 0x11, 0x11}},
		{"gray", toGray(smoothImage(33, 17)), "420", []byte{0x11}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := encodeDecode(t, tt.img, jpegEncodeOptions{Quality: 100, Subsample: tt.sub})
			segs := jpegSegments(t, out)
			var order []byte
			for _, s := range segs {
				order = append(order, s.marker)
			}
			wantOrder := []byte{jpegSOI, jpegAPP0, jpegDQT, jpegSOF0, jpegDHT, jpegSOS, jpegEOI}
			if !bytes.Equal(order, wantOrder) {
				t.Fatalf("markers = % x, want % x", order, wantOrder)
			}
			if app := segs[1].payload; !bytes.HasPrefix(app, []byte("JFIF\x00\x01")) {
				t.Errorf("APP0 = % x, want JFIF 1.x", app)
			}
			n := len(tt.sampling)
			if dqt := segs[2].payload; len(dqt) != 65*min(n, 2) {
				t.Errorf("DQT length = %d, want %d", len(dqt), 65*min(n, 2))
			}
			sof := segs[3].payload
			if int(sof[5]) != n || sof[0] != 8 {
				t.Fatalf("SOF0 precision %d, %d components, want 8, %d", sof[0], sof[5], n)
			}
			for i := 0; i < n; i++ {
				if got := sof[6+3*i+1]; got != tt.sampling[i] {
					t.Errorf("component %d sampling = %#x, want %#x", i+1, got, tt.sampling[i])
				}
			}
			if got, want := len(segs[4].payload), min(n, 2)*(17+12+17+162); got != want {
				t.Errorf("DHT length = %d, want %d", got, want)
			}
		})
	}
}

type jpegSeg struct {
	marker  byte
	payload []byte
}

// jpegSegments splits a baseline file into its segments; the entropy-coded data after SOS
// is checked for stuffing and skipped.
func jpegSegments(t *testing.T, b []byte) []jpegSeg {
	t.Helper()
	var segs []jpegSeg
	for i := 0; i < len(b); {
		if b[i] != 0xff || i+1 >= len(b) {
			t.Fatalf("byte %d = %#x, want a marker", i, b[i])
		}
		m := b[i+1]
		i += 2
		if !bytes.Contains([]byte{jpegSOI, jpegEOI, jpegAPP0, jpegDQT, jpegSOF0, jpegDHT,
			jpegSOS}, []byte{m}) {
			t.Fatalf("byte %d: marker %#x, want one writeJPEG writes", i-2, m)
		}
		if m == jpegSOI || m == jpegEOI {
			segs = append(segs, jpegSeg{marker: m})
			if m == jpegEOI && i != len(b) {
				t.Fatalf("%d bytes after EOI", len(b)-i)
			}
			continue
		}
		n := int(b[i])<<8 | int(b[i+1])
		segs = append(segs, jpegSeg{m, b[i+2 : i+n]})
		i += n
		if m != jpegSOS {
			continue
		}
		for ; i+1 < len(b) && !(b[i] == 0xff && b[i+1] != 0); i++ {
			if b[i] == 0xff {
				i++ // the stuffed zero
			}
		}
	}
	return segs
}

// TestWriteJPEGErrors checks the refusals: empty and oversized images, an unknown
// subsampling, and a failing writer.
func TestWriteJPEGErrors(t *testing.T) {
	tests := []struct {
		name string
		img  image.Image
		opt  jpegEncodeOptions
		w    *failWriter
		want error
	}{
		{"empty", image.NewRGBA(image.Rect(0, 0, 0, 5)), jpegEncodeOptions{}, nil,
			errJPEGEncodeSize},
		{"too wide", image.NewGray(image.Rect(0, 0, 65536, 1)), jpegEncodeOptions{}, nil,
			errJPEGEncodeSize},
		{"subsample", smoothImage(4, 4), jpegEncodeOptions{Subsample: "422"}, nil,
			errJPEGEncodeSubsample},
		{"writer", smoothImage(30, 30), jpegEncodeOptions{}, &failWriter{}, errFailWriter},
		{"writer midway", noise(600, 600), jpegEncodeOptions{Quality: 100}, &failWriter{n: 1},
			errFailWriter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w io.Writer = &bytes.Buffer{}
			if tt.w != nil {
				w = tt.w
			}
			if err := writeJPEG(w, tt.img, tt.opt); !errors.Is(err, tt.want) {
				t.Errorf("writeJPEG = %v, want %v", err, tt.want)
			}
		})
	}
}

// noise is an RGBA image of uniformly random pixels.
func noise(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.Uint32())
	}
	return img
}

var errFailWriter = errors.New("write refused")

// failWriter accepts n writes, then fails every one.
type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errFailWriter
	}
	f.n--
	return len(p), nil
}

// TestWriteJPEGQuality checks that size and fidelity grow with quality, and that 4:4:4
// costs more bytes than 4:2:0, on a thumbnail of the real photo.
func TestWriteJPEGQuality(t *testing.T) {
	thumb := photoThumb(t, 300)
	prevSize, prevPSNR := 0, 0.0
	for _, q := range []int{1, 30, 60, 90, 100} {
		out, dec := encodeDecode(t, thumb, jpegEncodeOptions{Quality: q})
		p := psnr(thumb, rgbaOf(dec))
		if len(out) <= prevSize || p <= prevPSNR {
			t.Errorf("q%d: %d bytes, %.1f dB; want more than the lower quality's %d, %.1f",
				q, len(out), p, prevSize, prevPSNR)
		}
		prevSize, prevPSNR = len(out), p
		full, _ := encodeDecode(t, thumb, jpegEncodeOptions{Quality: q, Subsample: "444"})
		if len(full) <= len(out) {
			t.Errorf("q%d: 4:4:4 %d bytes, want more than 4:2:0's %d", q, len(full), len(out))
		}
	}
}

// TestWriteJPEGMatchesStdlib compares 4:2:0 output with image/jpeg's (which is always
// 4:2:0) on the photo's 300 and 1200 px thumbnails: size within 5% and PSNR no more than
// 0.1 dB lower at each quality.
func TestWriteJPEGMatchesStdlib(t *testing.T) {
	for _, w := range []int{300, 1200} {
		thumb := photoThumb(t, w)
		for _, q := range []int{50, 80, 90} {
			t.Run(fmt.Sprintf("%d/q%d", w, q), func(t *testing.T) {
				var std bytes.Buffer
				if err := jpeg.Encode(&std, thumb, &jpeg.Options{Quality: q}); err != nil {
					t.Fatal(err)
				}
				stdDec, err := jpeg.Decode(bytes.NewReader(std.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				out, dec := encodeDecode(t, thumb, jpegEncodeOptions{Quality: q})
				ps, po := psnr(thumb, rgbaOf(stdDec)), psnr(thumb, rgbaOf(dec))
				t.Logf("image/jpeg %d bytes %.2f dB, writeJPEG %d bytes %.2f dB",
					std.Len(), ps, len(out), po)
				if r := float64(len(out)) / float64(std.Len()); r < 0.95 || r > 1.05 {
					t.Errorf("size = %d, want within 5%% of image/jpeg's %d", len(out), std.Len())
				}
				if po < ps-0.1 {
					t.Errorf("PSNR = %.2f dB, want ≥ image/jpeg's %.2f - 0.1", po, ps)
				}
			})
		}
	}
}

// photoThumb is the 1080p photo resized by the pipeline to w pixels wide.
func photoThumb(t testing.TB, w int) *image.RGBA {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", "photos", "flower-1920x1080.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	thumb, err := renderFrame(context.Background(), img, &sourceInfo{orientation: 1},
		imageOptions{Width: w})
	if err != nil {
		t.Fatal(err)
	}
	return thumb
}

// TestWriteJPEGProperty encodes random images (random type, size, origin, pixels, quality
// and subsampling, out-of-range qualities included): writeJPEG never fails on a valid
// size, and image/jpeg decodes every output at the input's size.
func TestWriteJPEGProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := 0; i < 300; i++ {
		img := randomImage(rng)
		opt := jpegEncodeOptions{Quality: rng.IntN(110) - 5, Subsample: [3]string{"", "444",
			"420"}[rng.IntN(3)]}
		encodeDecode(t, img, opt)
	}
}

// randomImage makes a noisy image of a random type, size (1 to 70 a side) and origin.
func randomImage(rng *rand.Rand) image.Image {
	w, h := 1+rng.IntN(70), 1+rng.IntN(70)
	r := image.Rect(0, 0, w, h).Add(image.Pt(rng.IntN(5)-2, rng.IntN(5)-2))
	var pix []uint8
	var img image.Image
	switch rng.IntN(4) {
	case 0:
		m := image.NewRGBA(r)
		pix, img = m.Pix, m
	case 1:
		m := image.NewGray(r)
		pix, img = m.Pix, m
	case 2:
		m := image.NewYCbCr(r, image.YCbCrSubsampleRatio(rng.IntN(6)))
		for i := range m.Cb {
			m.Cb[i], m.Cr[i] = uint8(rng.Uint32()), uint8(rng.Uint32())
		}
		pix, img = m.Y, m
	default:
		m := image.NewNRGBA(r)
		pix, img = m.Pix, m
	}
	for i := range pix {
		pix[i] = uint8(rng.Uint32())
	}
	return img
}

// FuzzWriteJPEG encodes fuzzed bytes as the samples of an RGBA, Gray or YCbCr image of a
// fuzzed size, quality and subsampling: every output must decode at that size.
func FuzzWriteJPEG(f *testing.F) {
	f.Add(uint8(1), uint8(1), uint8(0), uint8(75), []byte{255, 0, 0, 255})
	f.Add(uint8(17), uint8(9), uint8(0x81), uint8(100), bytes.Repeat([]byte{0, 255}, 200))
	f.Add(uint8(33), uint8(5), uint8(0x8e), uint8(1), bytes.Repeat([]byte{7, 250, 3}, 100))
	f.Fuzz(func(t *testing.T, w, h, kind, q uint8, data []byte) {
		if len(data) == 0 {
			return
		}
		r := image.Rect(0, 0, int(w%80)+1, int(h%80)+1)
		var img image.Image
		var planes [][]uint8
		switch kind % 3 {
		case 0:
			m := image.NewRGBA(r)
			img, planes = m, [][]uint8{m.Pix}
		case 1:
			m := image.NewGray(r)
			img, planes = m, [][]uint8{m.Pix}
		default:
			m := image.NewYCbCr(r, image.YCbCrSubsampleRatio(int(kind&0x7f/3)%6))
			img, planes = m, [][]uint8{m.Y, m.Cb, m.Cr}
		}
		k := 0
		for _, p := range planes {
			for i := range p {
				p[i] = data[k%len(data)]
				k++
			}
		}
		sub := "444"
		if kind&0x80 != 0 {
			sub = "420"
		}
		encodeDecode(t, img, jpegEncodeOptions{Quality: int(q), Subsample: sub})
	})
}

// TestJPEGFDCT compares jpegFDCT, with its AAN scale divided out, with the DCT of T.81 A.3.3
// computed directly, on random and extreme blocks.
func TestJPEGFDCT(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 50; i++ {
		var blk [64]float32
		var in [64]float64
		for k := range blk {
			v := float64(rng.IntN(256) - 128)
			if i == 0 {
				v = float64(127 * ((k + k/8) % 2)) // checkerboard
			}
			blk[k], in[k] = float32(v), v
		}
		jpegFDCT(&blk)
		for v := 0; v < 8; v++ {
			for u := 0; u < 8; u++ {
				want := refFDCT(&in, u, v)
				got := float64(blk[v*8+u]) / (8 * jpegAAN(u) * jpegAAN(v))
				if math.Abs(got-want) > 1e-3 {
					t.Fatalf("block %d: F(%d,%d) = %.4f, want %.4f", i, u, v, got, want)
				}
			}
		}
	}
}

// refFDCT is F(u,v) = ¼·C(u)·C(v)·Σx Σy f(x,y)·cos((2x+1)uπ/16)·cos((2y+1)vπ/16).
func refFDCT(f *[64]float64, u, v int) float64 {
	c := func(k int) float64 {
		if k == 0 {
			return 1 / math.Sqrt2
		}
		return 1
	}
	var s float64
	for y := 0; y < 8; y++ {
		for x := 0; x < 8; x++ {
			s += f[y*8+x] * math.Cos(float64((2*x+1)*u)*math.Pi/16) *
				math.Cos(float64((2*y+1)*v)*math.Pi/16)
		}
	}
	return s * c(u) * c(v) / 4
}

// TestJPEGEncTables checks the encoder's own tables: the zigzag order against the
// decoder's, the quality scaling at its anchors, and the Huffman tables against T.81 K.3
// (counts, symbol sets, and sample codes from tables K.3 to K.6).
func TestJPEGEncTables(t *testing.T) {
	if jpegEncZigzag != zigzag {
		t.Errorf("jpegEncZigzag = %v, want the decoder's %v", jpegEncZigzag, zigzag)
	}

	q50, q100, q1 := newJPEGQuantTable(&jpegLumaQuant, 50), newJPEGQuantTable(&jpegLumaQuant, 100),
		newJPEGQuantTable(&jpegChromaQuant, 1)
	for k, n := range jpegEncZigzag {
		if q50.zz[k] != jpegLumaQuant[n] || q100.zz[k] != 1 || q1.zz[k] != 255 {
			t.Fatalf("quant[%d] at q50, q100, q1 = %d, %d, %d; want %d, 1, 255", k,
				q50.zz[k], q100.zz[k], q1.zz[k], jpegLumaQuant[n])
		}
	}

	for i, h := range append(jpegDCSpecs[:], jpegACSpecs[:]...) {
		total := 0
		for _, c := range h.counts {
			total += int(c)
		}
		wantN := 12
		if i >= 2 {
			wantN = 162
		}
		seen := map[uint8]bool{}
		for _, s := range h.symbols {
			seen[s] = true
		}
		if total != len(h.symbols) || len(seen) != wantN {
			t.Errorf("table %d: %d codes, %d symbols, %d distinct, want %d each", i, total,
				len(h.symbols), len(seen), wantN)
		}
	}

	codes := []struct {
		name   string
		tbl    *jpegHuffCodes
		symbol uint8
		code   string
	}{
		{"DC luma 0", &jpegDCCodes[0], 0, "00"},
		{"DC luma 11", &jpegDCCodes[0], 11, "111111110"},
		{"DC chroma 11", &jpegDCCodes[1], 11, "11111111110"},
		{"AC luma EOB", &jpegACCodes[0], 0x00, "1010"},
		{"AC luma ZRL", &jpegACCodes[0], 0xf0, "11111111001"},
		{"AC luma 0/1", &jpegACCodes[0], 0x01, "00"},
		{"AC luma 0/9", &jpegACCodes[0], 0x09, "1111111110000010"},
		{"AC luma F/A", &jpegACCodes[0], 0xfa, "1111111111111110"},
		{"AC chroma EOB", &jpegACCodes[1], 0x00, "00"},
		{"AC chroma ZRL", &jpegACCodes[1], 0xf0, "1111111010"},
		{"AC chroma 1/7", &jpegACCodes[1], 0x17, "1111111110001000"},
		{"AC chroma F/A", &jpegACCodes[1], 0xfa, "1111111111111110"},
	}
	for _, c := range codes {
		v := c.tbl[c.symbol]
		got := fmt.Sprintf("%0*b", int(v&0xff), v>>8)
		if got != c.code {
			t.Errorf("%s: code = %s, want %s", c.name, got, c.code)
		}
	}
}

// TestJPEGSubsampling checks encode.go's chroma policy, and that encodeStill writes it.
func TestJPEGSubsampling(t *testing.T) {
	tests := []struct {
		w, h, q int
		want    string
	}{
		{1000, 1000, 90, "444"},
		{300, 169, 89, "420"},
		{300, 169, 80, "420"},
		{128, 128, 75, "444"},
		{129, 128, 75, "420"},
		{16384, 1, 10, "444"},
		{32, 16, 1, "444"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dx%d/q%d", tt.w, tt.h, tt.q), func(t *testing.T) {
			r := image.Rect(0, 0, tt.w, tt.h)
			if got := jpegSubsampling(r, tt.q); got != tt.want {
				t.Errorf("jpegSubsampling(%v, %d) = %s, want %s", r, tt.q, got, tt.want)
			}
			if tt.w*tt.h > 1<<18 {
				return
			}
			out, format, err := encodeStill(context.Background(), image.NewRGBA(r),
				imageOptions{Quality: tt.q})
			if err != nil || format != "jpeg" {
				t.Fatalf("encodeStill = %s, %v; want jpeg", format, err)
			}
			dec, err := jpeg.Decode(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			wantModel(t, dec, false, tt.want)
		})
	}
}

// BenchmarkWriteJPEG compares image/jpeg (always 4:2:0) with writeJPEG at 4:2:0 and 4:4:4
// on the photo's 300 and 1200 px thumbnails at q80. Besides wall time it reports the CPU
// time of the benchmark's own thread (less disturbed by other load) and the output size.
func BenchmarkWriteJPEG(b *testing.B) {
	for _, w := range []int{300, 1200} {
		thumb := photoThumb(b, w)
		encoders := []struct {
			name string
			enc  func(*bytes.Buffer) error
		}{
			{"stdlib", func(buf *bytes.Buffer) error {
				return jpeg.Encode(buf, thumb, &jpeg.Options{Quality: 80})
			}},
			{"420", func(buf *bytes.Buffer) error {
				return writeJPEG(buf, thumb, jpegEncodeOptions{Quality: 80, Subsample: "420"})
			}},
			{"444", func(buf *bytes.Buffer) error {
				return writeJPEG(buf, thumb, jpegEncodeOptions{Quality: 80, Subsample: "444"})
			}},
		}
		for _, e := range encoders {
			b.Run(fmt.Sprintf("%d/%s", w, e.name), func(b *testing.B) {
				var buf bytes.Buffer
				benchDecode(b, func() error {
					buf.Reset()
					return e.enc(&buf)
				})
				b.ReportMetric(float64(buf.Len()), "bytes")
			})
		}
	}
}
