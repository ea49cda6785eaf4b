// imagecheck_test.go holds helpers that decode outputs and check sizes and pixels.
package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// Tolerances of the cases README: per channel, for lossy and for PNG output.
const (
	tolLossy = 6
	tolPNG   = 2
)

var (
	red    = color.NRGBA{255, 0, 0, 255}
	lime   = color.NRGBA{0, 255, 0, 255}
	blue   = color.NRGBA{0, 0, 255, 255}
	yellow = color.NRGBA{255, 255, 0, 255}
	white  = color.NRGBA{255, 255, 255, 255}
	clear0 = color.NRGBA{}
)

// checkFunc checks one encoded output, however it was produced (pipeline or handler).
type checkFunc func(t *testing.T, out []byte)

// readCase returns the bytes of a file under testdata/cases.
func readCase(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "cases", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeOutput decodes an output of any format we write, sniffed from its bytes.
func decodeOutput(t *testing.T, out []byte) image.Image {
	t.Helper()
	if len(out) == 0 {
		t.Fatal("output is empty")
	}
	var img image.Image
	var err error
	switch f := sniffFormat(out); f {
	case "jpeg":
		img, err = jpeg.Decode(bytes.NewReader(out))
	case "png":
		img, err = png.Decode(bytes.NewReader(out))
	case "webp":
		// The pipeline's own WebP decode: webp.Decode alone misreads VP8's colour range.
		img, err = decodeWebPStill(out)
	case "gif":
		img, err = gif.Decode(bytes.NewReader(out))
	default:
		t.Fatalf("output format %q is not an image", f)
	}
	if err != nil {
		t.Fatalf("decode output: %v", err)
	}
	return img
}

// at returns the non-premultiplied colour of img at (x, y) relative to its origin.
func at(img image.Image, x, y int) color.NRGBA {
	b := img.Bounds()
	if m, ok := img.(*image.NRGBA); ok {
		o := m.PixOffset(b.Min.X+x, b.Min.Y+y)
		return color.NRGBA{m.Pix[o], m.Pix[o+1], m.Pix[o+2], m.Pix[o+3]}
	}
	return color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

// near reports whether got is within tol of want on every channel; colour channels are
// ignored when both are fully transparent.
func nearNRGBA(got, want color.NRGBA, tol int) bool {
	if got.A == 0 && want.A == 0 {
		return true
	}
	return absDiff(got.R, want.R) <= tol && absDiff(got.G, want.G) <= tol &&
		absDiff(got.B, want.B) <= tol && absDiff(got.A, want.A) <= tol
}

func wantSize(t *testing.T, img image.Image, w, h int) {
	t.Helper()
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("output size = %dx%d, want %dx%d", b.Dx(), b.Dy(), w, h)
	}
}

func wantPixel(t *testing.T, img image.Image, x, y int, want color.NRGBA, tol int) {
	t.Helper()
	if got := at(img, x, y); !nearNRGBA(got, want, tol) {
		t.Errorf("pixel(%d,%d) = %v, want %v ±%d", x, y, got, want, tol)
	}
}

// quadrantPoints are the centres of the four quarters: TL, TR, BL, BR.
func quadrantPoints(img image.Image) [4]image.Point {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	return [4]image.Point{{w / 4, h / 4}, {3 * w / 4, h / 4}, {w / 4, 3 * h / 4},
		{3 * w / 4, 3 * h / 4}}
}

// all combines checks.
func all(cs ...checkFunc) checkFunc {
	return func(t *testing.T, out []byte) {
		t.Helper()
		for _, c := range cs {
			c(t, out)
		}
	}
}

func size(w, h int) checkFunc {
	return func(t *testing.T, out []byte) {
		t.Helper()
		wantSize(t, decodeOutput(t, out), w, h)
	}
}

// quadrants checks the colours at the centres of the four quarters.
func quadrants(tol int, want ...color.NRGBA) checkFunc {
	return func(t *testing.T, out []byte) {
		t.Helper()
		img := decodeOutput(t, out)
		for i, p := range quadrantPoints(img) {
			wantPixel(t, img, p.X, p.Y, want[i], tol)
		}
	}
}

// everywhere checks that every pixel passes ok.
func everywhere(what string, ok func(c color.NRGBA) bool) checkFunc {
	return func(t *testing.T, out []byte) {
		t.Helper()
		img := decodeOutput(t, out)
		b := img.Bounds()
		for y := 0; y < b.Dy(); y++ {
			for x := 0; x < b.Dx(); x++ {
				if c := at(img, x, y); !ok(c) {
					t.Fatalf("pixel(%d,%d) = %v, want %s", x, y, c, what)
				}
			}
		}
	}
}

func pixel(x, y int, want color.NRGBA, tol int) checkFunc {
	return func(t *testing.T, out []byte) {
		t.Helper()
		wantPixel(t, decodeOutput(t, out), x, y, want, tol)
	}
}

// corners checks the four corner pixels.
func corners(want color.NRGBA, tol int) checkFunc {
	return func(t *testing.T, out []byte) {
		t.Helper()
		img := decodeOutput(t, out)
		w, h := img.Bounds().Dx(), img.Bounds().Dy()
		for _, p := range []image.Point{{0, 0}, {w - 1, 0}, {0, h - 1}, {w - 1, h - 1}} {
			wantPixel(t, img, p.X, p.Y, want, tol)
		}
	}
}

func format(want string) checkFunc {
	return func(t *testing.T, out []byte) {
		t.Helper()
		if got := sniffFormat(out); got != want {
			t.Fatalf("sniffFormat(output) = %q, want %q", got, want)
		}
	}
}

func gray(tol int) checkFunc {
	return everywhere("R=G=B", func(c color.NRGBA) bool {
		return absDiff(c.R, c.G) <= tol && absDiff(c.G, c.B) <= tol
	})
}

// sameAs checks that the output matches, pixel for pixel within tol, the pipeline's
// output for another case file and suffix (a reference twin).
func sameAs(file, suffix string, tol int) checkFunc {
	return func(t *testing.T, out []byte) {
		t.Helper()
		ref := runSuffix(t, file, suffix)
		wantImg, img := decodeOutput(t, ref), decodeOutput(t, out)
		wantSize(t, img, wantImg.Bounds().Dx(), wantImg.Bounds().Dy())
		maxDiff, at0 := 0, image.Point{}
		for y := 0; y < img.Bounds().Dy(); y++ {
			for x := 0; x < img.Bounds().Dx(); x++ {
				g, w := at(img, x, y), at(wantImg, x, y)
				d := max(absDiff(g.R, w.R), absDiff(g.G, w.G), absDiff(g.B, w.B),
					absDiff(g.A, w.A))
				if d > maxDiff {
					maxDiff, at0 = d, image.Point{x, y}
				}
			}
		}
		if maxDiff > tol {
			t.Errorf("largest difference from %s %s = %d at %v, want ≤ %d",
				file, suffix, maxDiff, at0, tol)
		}
	}
}

// smallerThan checks that the output is at most frac of the size of the pipeline's
// output for another suffix of the same file.
func smallerThan(file, suffix string, frac float64) checkFunc {
	return func(t *testing.T, out []byte) {
		t.Helper()
		ref := runSuffix(t, file, suffix)
		if float64(len(out)) > frac*float64(len(ref)) {
			t.Errorf("len(output) = %d, want ≤ %.2f × %d (%s)", len(out), frac, len(ref), suffix)
		}
	}
}

// runSuffix runs the pipeline on a case file with the options of a suffix.
func runSuffix(t *testing.T, file, suffix string) []byte {
	t.Helper()
	out, _, err := transformImage(context.Background(), readCase(t, file), suffixOptions(suffix))
	if err != nil {
		t.Fatalf("transformImage(%s, %s) error = %v", file, suffix, err)
	}
	return out
}

// suffixRE is the default resize grammar of the cases README, plus gravity.
var suffixRE = regexp.MustCompile(
	`^resize-(\d{0,4})x(\d{0,4})(-f)?(?:-g(center|top|bottom|left|right))?(?:-q(\d{1,3}))?` +
		`\.(jpeg|png|webp)$`)

// suffixOptions turns a request suffix into the options the handler passes, with the
// default config: thumb_max 1920x1080, quality 75 (max 90), background white,
// webp_method 4, max_source_pixels 50 M, max_animation_pixels 100 M.
func suffixOptions(suffix string) imageOptions {
	m := suffixRE.FindStringSubmatch(suffix)
	if m == nil {
		panic(fmt.Sprintf("bad suffix %q", suffix))
	}
	w, _ := strconv.Atoi(m[1])
	h, _ := strconv.Atoi(m[2])
	q := 75
	if m[5] != "" {
		q, _ = strconv.Atoi(m[5])
		q = min(max(q, 1), 90)
	}
	opt := imageOptions{
		Width: min(w, 1920), Height: min(h, 1080), Gravity: m[4], Quality: q, Format: m[6],
		Background: white, WebPMethod: 4,
		MaxSourcePixels: 50_000_000, MaxAnimationPixels: 100_000_000,
	}
	if m[3] != "" {
		opt.Fit = "fill"
	}
	return opt
}
