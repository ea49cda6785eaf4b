// pipeline_test.go checks errors, limits, cancellation and robustness of transformImage.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestSniffFormat(t *testing.T) {
	for _, tc := range []struct {
		b    string
		want string
	}{
		{"\xff\xd8\xff\xe0", "jpeg"}, {"\x89PNG\r\n\x1a\n", "png"}, {"GIF89a", "gif"},
		{"GIF87a", "gif"}, {"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"},
		{"RIFF\x00\x00\x00\x00WAVE", ""}, {"<html>", ""}, {"", ""}, {"\xff\xd8", ""},
	} {
		if got := sniffFormat([]byte(tc.b)); got != tc.want {
			t.Errorf("sniffFormat(%q) = %q, want %q", tc.b, got, tc.want)
		}
	}
}

func TestTransformErrors(t *testing.T) {
	big := readCase(t, "resize/offbyone-1164x776.png")
	for _, tc := range []struct {
		name string
		src  []byte
		opt  imageOptions
		want error
	}{
		{"html", []byte("<html><body>not found</body></html>"), imageOptions{}, errNotImage},
		{"empty", nil, imageOptions{}, errNotImage},
		{"png header only", big[:40], imageOptions{}, errBadImage},
		{"over pixel limit", big, imageOptions{MaxSourcePixels: 1164*776 - 1}, errSourceTooLarge},
		{"bad format", big, imageOptions{Format: "tiff"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := transformImage(context.Background(), tc.src, tc.opt)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("transformImage() = %d bytes, want an error", len(out))
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("transformImage() error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTransformCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := transformImage(ctx, readCase(t, "jpeg/baseline.jpg"), imageOptions{Width: 10})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("transformImage(cancelled) error = %v, want context.Canceled", err)
	}
}

// TestTruncatedInputs cuts every case file at many lengths: each cut either works or
// fails with one of the pipeline's errors, and none panics.
func TestTruncatedInputs(t *testing.T) {
	files, err := filepath.Glob("testdata/cases/*/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no case files: %v", err)
	}
	opt := suffixOptions("resize-16x.png")
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, cut := range cutPoints(len(src)) {
			_, _, err := transformImage(context.Background(), src[:cut], opt)
			if err == nil {
				continue
			}
			if strings.Contains(err.Error(), "panic") {
				t.Errorf("%s cut at %d: %v", f, cut, err)
			}
			if !errors.Is(err, errBadImage) && !errors.Is(err, errNotImage) &&
				!errors.Is(err, errSourceTooLarge) {
				t.Errorf("%s cut at %d: error = %v, want a pipeline error", f, cut, err)
			}
		}
	}
}

// cutPoints returns about 12 lengths spread over n, plus the very short ones.
func cutPoints(n int) []int {
	cuts := []int{0, 1, 4, 12, 16, 30}
	for i := 1; i < 12; i++ {
		cuts = append(cuts, n*i/12)
	}
	var out []int
	for _, c := range cuts {
		if c < n {
			out = append(out, c)
		}
	}
	return out
}

// gifWithScreen encodes frames and then rewrites the logical screen size.
func gifWithScreen(t *testing.T, g *gif.GIF, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, g); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	binary.LittleEndian.PutUint16(b[6:], uint16(w))
	binary.LittleEndian.PutUint16(b[8:], uint16(h))
	return b
}

func paletted(w, h int, c color.Color) *image.Paletted {
	m := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{c, color.Transparent})
	return m
}

// TestGIFFrameLargerThanScreen: browsers grow the canvas to show the whole frame;
// image/gif refuses the file, so the screen is grown before decoding.
func TestGIFFrameLargerThanScreen(t *testing.T) {
	src := gifWithScreen(t, &gif.GIF{Image: []*image.Paletted{paletted(32, 32, blue)},
		Delay: []int{0}}, 16, 16)
	out, _, err := transformImage(context.Background(), src, suffixOptions("resize-x.png"))
	if err != nil {
		t.Fatal(err)
	}
	all(size(32, 32), corners(blue, 0))(t, out)
}

// TestGIFHugeScreen: a 65535x65535 screen is refused from the header, a clear 422.
func TestGIFHugeScreen(t *testing.T) {
	src := gifWithScreen(t, &gif.GIF{Image: []*image.Paletted{paletted(1, 1, red)},
		Delay: []int{0}}, 65535, 65535)
	_, _, err := transformImage(context.Background(), src, suffixOptions("resize-x.png"))
	if !errors.Is(err, errSourceTooLarge) {
		t.Fatalf("transformImage() error = %v, want errSourceTooLarge", err)
	}
}

// TestGIFTruncatedLastFrame: a GIF cut inside its last frame keeps the frames before
// it, still and animated.
func TestGIFTruncatedLastFrame(t *testing.T) {
	src := readCase(t, "gif/animated-partial-frames.gif")
	l, err := walkGIF(src)
	if err != nil {
		t.Fatal(err)
	}
	cut := src[:l.frameEnd[2]-10]
	out, _, err := transformImage(context.Background(), cut, suffixOptions("resize-24x.png"))
	if err != nil {
		t.Fatal(err)
	}
	quadrants(tolPNG, red, clear0, red, clear0)(t, out)
	out, _, err = transformImage(context.Background(), cut, suffixOptions("resize-24x.webp"))
	if err != nil {
		t.Fatal(err)
	}
	animatedFrames(2, []int{100, 200}, 0)(t, out)
}

func TestGIFLoopCount(t *testing.T) {
	for _, tc := range []struct{ gifLoop, want int }{{0, 0}, {-1, 1}, {2, 3}} {
		g := &gif.GIF{Image: []*image.Paletted{paletted(4, 4, red), paletted(4, 4, blue)},
			Delay: []int{5, 7}, LoopCount: tc.gifLoop}
		src := gifWithScreen(t, g, 4, 4)
		out, _, err := transformImage(context.Background(), src, imageOptions{Format: "webp"})
		if err != nil {
			t.Fatal(err)
		}
		animatedFrames(2, []int{50, 70}, tc.want)(t, out)
	}
}

func TestRound16(t *testing.T) {
	for _, tc := range []struct {
		v    uint32
		want uint8
	}{{0, 0}, {65535, 255}, {128, 0}, {129, 1}, {0x7fff, 127}, {0x8000, 128}, {0xff00, 254}} {
		if got := round16(tc.v); got != tc.want {
			t.Errorf("round16(%#x) = %d, want %d", tc.v, got, tc.want)
		}
	}
}

// muxedAnimation builds a two-frame animated WebP with the pipeline's own muxer: red at
// half alpha for 40 ms, then opaque blue for 60 ms, playing 3 times.
func muxedAnimation(t *testing.T) []byte {
	t.Helper()
	var frames []webpAnimFrame
	for i, c := range []color.RGBA{{128, 0, 0, 128}, {0, 0, 255, 255}} {
		m := image.NewRGBA(image.Rect(0, 0, 8, 8))
		for p := 0; p < len(m.Pix); p += 4 {
			m.Pix[p], m.Pix[p+1], m.Pix[p+2], m.Pix[p+3] = c.R, c.G, c.B, c.A
		}
		f, err := encodeAnimFrame(m, imageOptions{Lossless: true})
		if err != nil {
			t.Fatal(err)
		}
		f.duration = 40 + 20*i
		frames = append(frames, f)
	}
	return muxWebPAnimation(8, 8, 3, frames)
}

// TestAnimatedWebPPartialAlpha: frames with partial alpha keep their colour through
// decode (premultiplied) and re-encode, and the muxer's output is a valid animation.
func TestAnimatedWebPPartialAlpha(t *testing.T) {
	src := muxedAnimation(t)
	animatedFrames(2, []int{40, 60}, 3)(t, src)

	out, _, err := transformImage(context.Background(), src, imageOptions{Format: "png"})
	if err != nil {
		t.Fatal(err)
	}
	all(size(8, 8), pixel(4, 4, color.NRGBA{255, 0, 0, 128}, tolPNG))(t, out)

	out, _, err = transformImage(context.Background(), src,
		imageOptions{Format: "webp", Width: 4, Lossless: true})
	if err != nil {
		t.Fatal(err)
	}
	all(size(4, 4), pixel(2, 2, color.NRGBA{255, 0, 0, 128}, tolPNG),
		animatedFrames(2, []int{40, 60}, 3))(t, out)
}

// TestAnimatedWebPLimitForStills: an animated WebP is decoded whole even for a still,
// so the animation budget applies to it too.
func TestAnimatedWebPLimitForStills(t *testing.T) {
	src := muxedAnimation(t)
	_, _, err := transformImage(context.Background(), src,
		imageOptions{Format: "png", MaxAnimationPixels: 127})
	if !errors.Is(err, errAnimationTooLarge) {
		t.Fatalf("transformImage() error = %v, want errAnimationTooLarge", err)
	}
}

// TestZeroOptionsStillLimit: zero limits mean the defaults, not "no limit", so a
// caller that forgets them cannot be taken down by a bomb.
func TestZeroOptionsStillLimit(t *testing.T) {
	src := readCase(t, "bombs/png-ihdr-100000x100000.png")
	if _, _, err := transformImage(context.Background(), src, imageOptions{}); !errors.Is(err,
		errSourceTooLarge) {
		t.Fatalf("transformImage(bomb, zero options) error = %v, want errSourceTooLarge", err)
	}
}

// TestBombsAllocateLittle: refusing a bomb costs no pixel buffer. The bytes allocated
// while refusing each stay far below one row of pixels of the announced size.
func TestBombsAllocateLittle(t *testing.T) {
	for _, f := range []string{"bombs/jpeg-sof-65500x65500.jpg",
		"bombs/png-ihdr-100000x100000.png", "bombs/png-bomb-20000x20000.png"} {
		src := readCase(t, f)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := transformImage(context.Background(), src, suffixOptions("resize-100x.jpeg"))
		runtime.ReadMemStats(&after)
		if !errors.Is(err, errSourceTooLarge) {
			t.Fatalf("%s: error = %v, want errSourceTooLarge", f, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%s: allocated %d bytes while refusing, want ≤ 1 MiB", f, n)
		}
	}
}

// TestGIFCutInsideOnlyFrame: a one-frame GIF cut inside its data has no frame left,
// a clear errBadImage (502).
func TestGIFCutInsideOnlyFrame(t *testing.T) {
	m := paletted(16, 16, red)
	for i := range m.Pix {
		m.Pix[i] = uint8(i % 2)
	}
	src := gifWithScreen(t, &gif.GIF{Image: []*image.Paletted{m}, Delay: []int{0}}, 16, 16)
	_, _, err := transformImage(context.Background(), src[:len(src)-8],
		suffixOptions("resize-x.png"))
	if !errors.Is(err, errBadImage) {
		t.Fatalf("transformImage(cut GIF) error = %v, want errBadImage", err)
	}
}
