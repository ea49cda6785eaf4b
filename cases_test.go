// cases_test.go runs every file of the shared cases folder through the pipeline, one row
// per file and request, with the expected result of the cases README.
package main

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"net/http"
	"testing"

	"github.com/gen2brain/webp"
)

// caseRow is one request for one case file. suffix is the request suffix of the default
// grammar (what a client asks for after "/<file>/"), opt the options the handler must
// derive from it, and either check (status 200) or wantErr with its status. The handler
// tests can drive the same rows over HTTP, since the checks only look at the output
// bytes: serve testdata/cases from an origin, GET "/"+r.file+"/"+r.suffix for each row
// with r.config == "" (or after configuring what r.config says), expect r.status, and
// on 200 call r.check(t, body).
type caseRow struct {
	file    string // under testdata/cases (a copy of ../shared/cases)
	suffix  string
	opt     imageOptions
	status  int
	wantErr error
	check   checkFunc
	// config names what a handler test must configure besides the suffix, for rows
	// whose options differ from the default config's; "" for plain rows.
	config string
}

// row builds a success row whose options come from the suffix and the default config.
func row(file, suffix string, check checkFunc) caseRow {
	return caseRow{file: file, suffix: suffix, opt: suffixOptions(suffix), status: 200,
		check: check}
}

// failRow builds a row that must fail with err, shown to clients as status.
func failRow(file, suffix string, err error, status int) caseRow {
	return caseRow{file: file, suffix: suffix, opt: suffixOptions(suffix), status: status,
		wantErr: err}
}

// with returns r with its options changed by f, for settings a suffix cannot say;
// config says which (a config key or a route setting).
func (r caseRow) with(config string, f func(*imageOptions)) caseRow {
	f(&r.opt)
	r.config = config
	return r
}

func caseRows() []caseRow {
	var rows []caseRow
	for _, n := range []string{"1", "2", "3", "4", "6", "8"} {
		f := "jpeg/orient-" + n + ".jpg"
		rows = append(rows,
			row(f, "resize-32x.png", all(size(32, 16), quadrants(tolLossy, red, lime, blue,
				yellow), noOrientation)),
			row(f, "resize-x.jpeg", all(size(64, 32), quadrants(tolLossy, red, lime, blue,
				yellow), noOrientation)))
	}
	rows = append(rows,
		// Within the README's ±6 because a 32x16 output gets 4:4:4 chroma (jpegSubsampling).
		row("jpeg/cmyk-ycck-adobe.jpg", "resize-32x.jpeg", all(size(32, 16),
			quadrants(tolLossy, red, lime, blue, yellow), jpegModel(color.YCbCrModel))),
		row("jpeg/cmyk-ycck-adobe.jpg", "resize-32x.png", all(size(32, 16),
			quadrants(tolPNG, red, lime, blue, yellow))),
		row("jpeg/rgb-no-ycbcr.jpg", "resize-32x.png", all(size(32, 16),
			quadrants(tolLossy, red, lime, blue, yellow))),
		row("jpeg/gray.jpg", "resize-32x.webp", all(format("webp"), size(32, 16), gray(2))),
		row("jpeg/baseline.jpg", "resize-64x.png", size(64, 64)),
		row("jpeg/progressive.jpg", "resize-64x.png",
			sameAs("jpeg/baseline.jpg", "resize-64x.png", 2)),
		row("jpeg/restart-every-mcu-row.jpg", "resize-64x.png",
			sameAs("jpeg/baseline.jpg", "resize-64x.png", 16)),
		row("jpeg/restart-ff00-padding.jpg", "resize-64x.png",
			sameAs("jpeg/restart-every-mcu-row.jpg", "resize-64x.png", 0)),
		// Policy: a truncated JPEG is a clear 502; image/jpeg gives no partial image.
		failRow("jpeg/truncated-baseline-60pct.jpg", "resize-32x.jpeg", errBadImage, 502),
		failRow("jpeg/truncated-progressive-60pct.jpg", "resize-32x.jpeg", errBadImage, 502),

		row("png/rgb16.png", "resize-64x.png", size(64, 64)),
		row("png/rgb16.png", "resize-x.png", rounded16("png/rgb16.png")),
		row("png/rgb16-adam7.png", "resize-64x.png", sameAs("png/rgb16.png", "resize-64x.png", 0)),
		row("png/rgb16-adam7.png", "resize-x.png", rounded16("png/rgb16-adam7.png")),
		row("png/rgb8.png", "resize-64x.png", size(64, 64)),
		row("png/rgb8-adam7.png", "resize-64x.png", sameAs("png/rgb8.png", "resize-64x.png", 0)),
		row("png/palette-trns-binary.png", "resize-32x.png", all(size(32, 32),
			corners(clear0, 0), pixel(16, 16, red, tolPNG))),
		row("png/palette-trns-binary.png", "resize-32x.webp", all(format("webp"),
			size(32, 32), corners(clear0, 0), pixel(16, 16, red, tolLossy))),
		row("png/palette-trns-partial.png", "resize-32x.png", all(size(32, 32),
			quadrants(tolPNG, clear0, red, color.NRGBA{255, 0, 0, 128},
				color.NRGBA{0, 0, 255, 64}))),
		row("png/palette-trns-partial.png", "resize-32x.webp", all(format("webp"),
			size(32, 32), quadrants(tolLossy+4, clear0, red, color.NRGBA{255, 0, 0, 128},
				color.NRGBA{0, 0, 255, 64}))),
		// The file is a vertical ramp sampled by the manifest at source rows 16 and 48;
		// output rows 8 and 24 average source rows 16-17 and 48-49, hence "≈".
		row("png/gray-alpha8.png", "resize-32x.png", all(size(32, 32), gray(0),
			pixel(16, 8, color.NRGBA{190, 190, 190, 65}, tolLossy),
			pixel(16, 24, color.NRGBA{60, 60, 60, 195}, tolLossy))),
		// Policy: gAMA (and cHRM) are ignored, as for most web images: samples are sRGB.
		row("png/gama-1.0.png", "resize-16x.png", all(size(16, 16),
			pixel(8, 8, color.NRGBA{128, 128, 128, 255}, tolPNG))),
		row("png/iccp-bad-crc.png", "resize-16x.png", all(size(16, 16),
			quadrants(tolPNG, color.NRGBA{200, 40, 40, 255}, color.NRGBA{200, 40, 40, 255},
				color.NRGBA{200, 40, 40, 255}, color.NRGBA{200, 40, 40, 255}))),

		row("gif/animated-partial-frames.gif", "resize-24x.png", all(size(24, 16),
			sameAsGIFFrame("gif/animated-partial-frames.coalesced-reference.gif", 0, tolPNG),
			quadrants(tolPNG, red, clear0, red, clear0))),
		row("gif/animated-partial-frames.gif", "resize-24x.jpeg", all(size(24, 16),
			quadrants(tolLossy, red, white, red, white))),
		// Lossy WebP bleeds chroma across the 8-pixel squares of this tiny animation,
		// hence the wider tolerance; the lossless row holds the frames to ±2.
		row("gif/animated-partial-frames.gif", "resize-24x.webp", animatedLike(
			"gif/animated-partial-frames.coalesced-reference.gif", []int{100, 200, 300}, 0,
			24)),
		row("gif/animated-partial-frames.gif", "resize-24x.webp", animatedLike(
			"gif/animated-partial-frames.coalesced-reference.gif", []int{100, 200, 300}, 0,
			tolPNG)).with("route asks for lossless WebP",
			func(o *imageOptions) { o.Lossless = true }),
		// Policy: odd 1x1 GIFs come out as browsers show them: one transparent pixel.
		row("gif/1x1-transparent.gif", "resize-x.png", all(size(1, 1), corners(clear0, 0))),
		row("gif/1x1-empty-lzw.gif", "resize-x.png", all(size(1, 1), corners(clear0, 0))),
		row("gif/1x1-no-eoi.gif", "resize-x.png", all(size(1, 1), corners(clear0, 0))),
		row("gif/animated-partial-frames.coalesced-reference.gif", "resize-48x.png",
			all(size(48, 32), sameAsGIFFrame(
				"gif/animated-partial-frames.coalesced-reference.gif", 0, 0))),
	)
	for _, f := range []string{"webp/lossy-alpha.webp", "webp/lossless-alpha.webp"} {
		rows = append(rows,
			row(f, "resize-32x.png", all(format("png"), size(32, 32), corners(clear0, 0),
				pixel(16, 16, red, tolLossy))),
			row(f, "resize-32x.webp", all(format("webp"), size(32, 32), corners(clear0, 0),
				pixel(16, 16, red, tolLossy))))
	}
	rows = append(rows,
		row("webp/lossy-opaque.webp", "resize-32x.png", all(size(32, 32), opaque)),
		row("webp/lossy-opaque.webp", "resize-32x.webp", all(size(32, 32), opaque)),
		// The first frame: 24 red columns on the left, the rest of the canvas transparent.
		row("webp/animated.webp", "resize-32x.png", all(size(32, 21),
			quadrants(tolLossy, red, clear0, red, clear0))),
		row("webp/animated.webp", "resize-32x.webp", animatedFrames(3, []int{100, 200, 300}, 0)),

		// Policy: profiles are converted to sRGB; outputs carry none. References are
		// ImageMagick/lcms conversions of the centre pixel (cases MANIFEST).
		row("icc/p3-tagged.jpg", "resize-32x.jpeg", all(size(32, 32),
			pixel(16, 16, color.NRGBA{218, 0, 26, 255}, tolLossy))),
		row("icc/p3-tagged.png", "resize-32x.jpeg", all(size(32, 32),
			pixel(16, 16, color.NRGBA{218, 0, 26, 255}, tolLossy))),
		row("icc/adobergb-tagged.jpg", "resize-32x.jpeg", all(size(32, 32),
			pixel(16, 16, color.NRGBA{0, 161, 48, 255}, tolLossy))),

		row("extreme/wide-10000x1.png", "resize-100x.png", size(100, 1)),
		row("extreme/wide-10000x1.png", "resize-100x100-f.png", size(100, 100)),
	)
	for _, f := range []string{"extreme/1x1-red.jpg", "extreme/1x1-red.png",
		"extreme/1x1-red.webp"} {
		rows = append(rows,
			row(f, "resize-100x.png", all(size(1, 1), pixel(0, 0, red, tolLossy))),
			row(f, "resize-100x100-f.png", all(size(100, 100), pixel(50, 50, red, tolLossy))))
	}
	rows = append(rows,
		row("extreme/1x1-transparent.gif", "resize-100x.png", all(size(1, 1),
			corners(clear0, 0))),
		row("extreme/1x1-transparent.gif", "resize-100x100-f.png", all(size(100, 100),
			corners(clear0, 0))),

		failRow("bombs/jpeg-sof-65500x65500.jpg", "resize-100x.jpeg", errSourceTooLarge, 422),
		failRow("bombs/png-ihdr-100000x100000.png", "resize-100x.jpeg", errSourceTooLarge, 422),
		failRow("bombs/png-bomb-20000x20000.png", "resize-100x.jpeg", errSourceTooLarge, 422),

		row("resize/offbyone-1164x776.png", "resize-400x.png", size(400, 267)),
		row("resize/alpha-halo-64.png", "resize-21x.png", all(size(21, 21),
			corners(clear0, 0), noFringe(3, 250))),
		row("resize/alpha-halo-64.png", "resize-21x.webp", all(size(21, 21),
			corners(clear0, 0), noFringe(10, 200))),
		// Policy: plain averaging of the stored values (≈128), not linear light (≈188).
		row("resize/gamma-stripes-gray-64.png", "resize-16x.png", all(size(16, 16),
			everywhere("≈128", func(c color.NRGBA) bool { return absDiff(c.R, 128) <= 3 }))),
		row("resize/photo-256-q95.jpg", "resize-128x-q30.jpeg", all(size(128, 128),
			smallerThan("resize/photo-256-q95.jpg", "resize-128x-q90.jpeg", 0.6))),
		row("resize/photo-256-q95.jpg", "resize-128x-q90.jpeg", size(128, 128)),

		// Any transparent source to JPEG: transparency becomes the background colour.
		row("png/palette-trns-partial.png", "resize-32x.jpeg", all(size(32, 32),
			quadrants(tolLossy+2, white, red, color.NRGBA{255, 127, 127, 255},
				color.NRGBA{191, 191, 255, 255}))),
		row("png/palette-trns-partial.png", "resize-32x.jpeg", all(size(32, 32),
			pixel(8, 8, color.NRGBA{0x33, 0x66, 0xcc, 255}, tolLossy))).
			with(`background = "#3366cc"`,
				func(o *imageOptions) { o.Background = color.NRGBA{0x33, 0x66, 0xcc, 255} }),
		row("png/palette-trns-partial.png", "resize-32x.png", format("png")).
			with("output format auto, Accept without image/webp",
				func(o *imageOptions) { o.Format = "auto-noalpha" }),
		row("jpeg/orient-1.jpg", "resize-32x.jpeg", format("jpeg")).
			with("output format auto, Accept without image/webp",
				func(o *imageOptions) { o.Format = "auto-noalpha" }),
		row("gif/animated-partial-frames.gif", "resize-24x.webp", animatedFrames(3,
			[]int{100, 200, 300}, 0)).with("max_animation_pixels = 4608",
			func(o *imageOptions) { o.MaxAnimationPixels = 4608 }),
		failRow("gif/animated-partial-frames.gif", "resize-24x.webp", errAnimationTooLarge,
			422).with("max_animation_pixels = 4607",
			func(o *imageOptions) { o.MaxAnimationPixels = 4607 }),
	)
	return rows
}

func TestCases(t *testing.T) {
	for _, r := range caseRows() {
		t.Run(r.file+"/"+r.suffix, func(t *testing.T) {
			out, f, err := transformImage(context.Background(), readCase(t, r.file), r.opt)
			if r.wantErr != nil {
				if !errors.Is(err, r.wantErr) {
					t.Fatalf("transformImage() error = %v, want %v (status %d)",
						err, r.wantErr, r.status)
				}
				return
			}
			if err != nil {
				t.Fatalf("transformImage() error = %v", err)
			}
			if want := sniffFormat(out); f != want {
				t.Errorf("transformImage() format = %q, output sniffs as %q", f, want)
			}
			r.check(t, out)
		})
	}
}

// TestCaseStatuses keeps the rows' statuses consistent with the error mapping the
// handler uses.
func TestCaseStatuses(t *testing.T) {
	statuses := map[error]int{errSourceTooLarge: 422, errAnimationTooLarge: 422,
		errNotImage: 415, errBadImage: 502}
	for _, r := range caseRows() {
		want := http.StatusOK
		if r.wantErr != nil {
			want = statuses[r.wantErr]
		}
		if r.status != want {
			t.Errorf("row %s %s status = %d, want %d", r.file, r.suffix, r.status, want)
		}
	}
}

// noOrientation checks that the output has no EXIF (so no Orientation other than 1).
func noOrientation(t *testing.T, out []byte) {
	t.Helper()
	info, err := probe(out)
	if err != nil {
		t.Fatalf("probe(output) error = %v", err)
	}
	if info.orientation != 1 {
		t.Errorf("output orientation = %d, want 1", info.orientation)
	}
	if bytes.Contains(out, []byte("Exif\x00\x00")) || bytes.Contains(out, []byte("eXIf")) {
		t.Error("output carries an EXIF block")
	}
}

func jpegModel(want color.Model) checkFunc {
	return func(t *testing.T, out []byte) {
		t.Helper()
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ColorModel != want {
			t.Errorf("output colour model = %v, want YCbCr", cfg.ColorModel)
		}
	}
}

var opaque = everywhere("opaque", func(c color.NRGBA) bool { return c.A == 255 })

// noFringe checks the halo case: every visible pixel has no green cast (G and B within
// tol of R), and those at least half opaque are no darker than minWhite.
func noFringe(tol int, minWhite uint8) checkFunc {
	return everywhere("white, |G-R| and |B-R| small", func(c color.NRGBA) bool {
		if c.A == 0 {
			return true
		}
		if absDiff(c.G, c.R) > tol || absDiff(c.B, c.R) > tol {
			return false
		}
		return c.A < 128 || c.R >= minWhite
	})
}

// rounded16 checks an unresized 16-bit PNG: each 8-bit sample is (v*255+32767)/65535 of
// the 16-bit one.
func rounded16(file string) checkFunc {
	return func(t *testing.T, out []byte) {
		t.Helper()
		src, err := png.Decode(bytes.NewReader(readCase(t, file)))
		if err != nil {
			t.Fatal(err)
		}
		img := decodeOutput(t, out)
		wantSize(t, img, src.Bounds().Dx(), src.Bounds().Dy())
		for y := 0; y < src.Bounds().Dy(); y++ {
			for x := 0; x < src.Bounds().Dx(); x++ {
				c := color.NRGBA64Model.Convert(src.At(x, y)).(color.NRGBA64)
				want := color.NRGBA{round16(uint32(c.R)), round16(uint32(c.G)),
					round16(uint32(c.B)), round16(uint32(c.A))}
				if got := at(img, x, y); got != want {
					t.Fatalf("pixel(%d,%d) = %v, want %v from %v", x, y, got, want, c)
				}
			}
		}
	}
}

// sameAsGIFFrame compares the output with frame i of a coalesced reference GIF, at the
// output pixels whose source block in the reference is of one colour.
func sameAsGIFFrame(ref string, i, tol int) checkFunc {
	return func(t *testing.T, out []byte) {
		t.Helper()
		g, err := gif.DecodeAll(bytes.NewReader(readCase(t, ref)))
		if err != nil {
			t.Fatal(err)
		}
		compareFrame(t, decodeOutput(t, out), g.Image[i], tol)
	}
}

// compareFrame checks img against a larger reference at every pixel whose block in the
// reference is uniform, so resampling at edges does not count.
func compareFrame(t *testing.T, img, ref image.Image, tol int) {
	t.Helper()
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	kx, ky := ref.Bounds().Dx()/w, ref.Bounds().Dy()/h
	checked := 0
	for y := 1; y < h-1; y++ {
		for x := 1; x < w-1; x++ {
			want, uniform := at(ref, x*kx, y*ky), true
			for dy := -ky; dy < 2*ky && uniform; dy++ {
				for dx := -kx; dx < 2*kx && uniform; dx++ {
					uniform = nearNRGBA(at(ref, x*kx+dx, y*ky+dy), want, 0)
				}
			}
			if !uniform {
				continue
			}
			checked++
			if got := at(img, x, y); !nearNRGBA(got, want, tol) {
				t.Errorf("pixel(%d,%d) = %v, want %v ±%d", x, y, got, want, tol)
			}
		}
	}
	if checked < w*h/4 {
		t.Errorf("compared %d pixels of %d, want at least a quarter", checked, w*h)
	}
}

// animatedFrames checks an animated WebP output: frame count, delays, loop count.
func animatedFrames(n int, delays []int, loop int) checkFunc {
	return func(t *testing.T, out []byte) {
		t.Helper()
		info, err := probe(out)
		if err != nil {
			t.Fatalf("probe(output) error = %v", err)
		}
		if info.format != "webp" || info.frames != n || info.loop != loop {
			t.Errorf("output = %s, %d frames, loop %d; want webp, %d frames, loop %d",
				info.format, info.frames, info.loop, n, loop)
		}
		a, err := webp.DecodeAll(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("webp.DecodeAll(output) error = %v", err)
		}
		if len(a.Image) != n {
			t.Fatalf("decoded frames = %d, want %d", len(a.Image), n)
		}
		for i, d := range delays {
			if a.Delay[i] != d {
				t.Errorf("frame %d delay = %d ms, want %d", i, a.Delay[i], d)
			}
		}
	}
}

// animatedLike checks an animated WebP output frame by frame against a coalesced GIF.
func animatedLike(ref string, delays []int, loop, tol int) checkFunc {
	return func(t *testing.T, out []byte) {
		t.Helper()
		animatedFrames(len(delays), delays, loop)(t, out)
		g, err := gif.DecodeAll(bytes.NewReader(readCase(t, ref)))
		if err != nil {
			t.Fatal(err)
		}
		a, err := webp.DecodeAll(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		for i := range a.Image {
			compareFrame(t, a.Image[i], g.Image[i], tol)
		}
	}
}
