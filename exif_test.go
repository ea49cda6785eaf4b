// exif_test.go checks orientation 1 to 8 in JPEG (APP1), PNG (eXIf) and WebP (EXIF).
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/gen2brain/webp"
)

// quadrantImage is the upright picture of the orientation cases: 64x32, red top-left,
// lime top-right, blue bottom-left, yellow bottom-right.
func quadrantImage() *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, 64, 32))
	for y := 0; y < 32; y++ {
		for x := 0; x < 64; x++ {
			c := [4]color.NRGBA{red, lime, blue, yellow}[2*(y/16)+x/32]
			m.SetNRGBA(x, y, c)
		}
	}
	return m
}

// The stored image for each orientation is built from plain rotations and flips, an
// independent route from storedPoint's table.
func rotCW(m *image.NRGBA) *image.NRGBA {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	d := image.NewNRGBA(image.Rect(0, 0, h, w))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			d.SetNRGBA(h-1-y, x, m.NRGBAAt(x, y))
		}
	}
	return d
}

func flipH(m *image.NRGBA) *image.NRGBA {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	d := image.NewNRGBA(m.Rect)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			d.SetNRGBA(w-1-x, y, m.NRGBAAt(x, y))
		}
	}
	return d
}

// storedFor returns how a camera stores the upright image m under orientation o.
func storedFor(m *image.NRGBA, o int) *image.NRGBA {
	switch o {
	case 2:
		return flipH(m)
	case 3:
		return rotCW(rotCW(m))
	case 4:
		return flipH(rotCW(rotCW(m)))
	case 5:
		return flipH(rotCW(m))
	case 6:
		return rotCW(rotCW(rotCW(m)))
	case 7:
		return flipH(rotCW(rotCW(rotCW(m))))
	case 8:
		return rotCW(m)
	}
	return m
}

// exifBlock is a minimal big-endian TIFF block whose IFD0 holds only Orientation.
func exifBlock(o int) []byte {
	b := []byte("MM\x00\x2a\x00\x00\x00\x08\x00\x01")
	b = append(b, 0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1, 0, byte(o), 0, 0)
	return append(b, 0, 0, 0, 0)
}

func jpegWithEXIF(t *testing.T, m image.Image, orientations ...int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	out := []byte{0xff, 0xd8}
	for _, o := range orientations {
		seg := append([]byte("Exif\x00\x00"), exifBlock(o)...)
		out = append(out, 0xff, 0xe1, byte((len(seg)+2)>>8), byte(len(seg)+2))
		out = append(out, seg...)
	}
	return append(out, buf.Bytes()[2:]...)
}

func pngWithEXIF(t *testing.T, m image.Image, o int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	ihdrEnd := 8 + 12 + 13
	data := exifBlock(o)
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	chunk = append(chunk, "eXIf"...)
	chunk = append(chunk, data...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	out := append(append([]byte(nil), b[:ihdrEnd]...), chunk...)
	return append(out, b[ihdrEnd:]...)
}

// webpWithEXIF wraps a lossless WebP in the extended format with an EXIF chunk.
func webpWithEXIF(t *testing.T, m image.Image, o int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := webp.Encode(&buf, m, webp.Options{Lossless: true}); err != nil {
		t.Fatal(err)
	}
	img := webpChunks(buf.Bytes())
	vp8x := make([]byte, 10)
	vp8x[0] = 0x08
	putLE24(vp8x[4:], m.Bounds().Dx()-1)
	putLE24(vp8x[7:], m.Bounds().Dy()-1)
	out := appendChunk([]byte("RIFF\x00\x00\x00\x00WEBP"), "VP8X", vp8x)
	for _, c := range img {
		out = append(out, c.raw...)
	}
	out = appendChunk(out, "EXIF", exifBlock(o))
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
	return out
}

func TestOrientationAllFormats(t *testing.T) {
	makers := map[string]func(*testing.T, image.Image, int) []byte{
		"jpeg": func(t *testing.T, m image.Image, o int) []byte { return jpegWithEXIF(t, m, o) },
		"png":  pngWithEXIF,
		"webp": webpWithEXIF,
	}
	for name, mk := range makers {
		for o := 1; o <= 8; o++ {
			t.Run(fmt.Sprintf("%s/%d", name, o), func(t *testing.T) {
				src := mk(t, storedFor(quadrantImage(), o), o)
				tol := tolPNG
				if name == "jpeg" {
					tol = tolLossy
				}
				for _, suffix := range []string{"resize-32x.png", "resize-x.png"} {
					out, _, err := transformImage(context.Background(), src,
						suffixOptions(suffix))
					if err != nil {
						t.Fatalf("transformImage(%s) error = %v", suffix, err)
					}
					w, h := 32, 16
					if suffix == "resize-x.png" {
						w, h = 64, 32
					}
					all(size(w, h), quadrants(tol, red, lime, blue, yellow),
						noOrientation)(t, out)
				}
			})
		}
	}
}

// TestOrientationFirstEXIFWins: with two APP1 EXIF blocks (6, then 1), the first counts.
func TestOrientationFirstEXIFWins(t *testing.T) {
	src := jpegWithEXIF(t, storedFor(quadrantImage(), 6), 6, 1)
	out, _, err := transformImage(context.Background(), src, suffixOptions("resize-32x.png"))
	if err != nil {
		t.Fatal(err)
	}
	all(size(32, 16), quadrants(tolLossy, red, lime, blue, yellow))(t, out)
}

// TestOrientationBeforeGeometry: the box is applied to the upright size, so a 6-rotated
// 32x64 stored image asked for 16 px wide comes out 16x8.
func TestOrientationBeforeGeometry(t *testing.T) {
	src := pngWithEXIF(t, storedFor(quadrantImage(), 6), 6)
	for _, tc := range []struct {
		suffix string
		w, h   int
	}{{"resize-16x.png", 16, 8}, {"resize-x8.png", 16, 8}, {"resize-40x10-f.png", 40, 10}} {
		t.Run(tc.suffix, func(t *testing.T) {
			out, _, err := transformImage(context.Background(), src, suffixOptions(tc.suffix))
			if err != nil {
				t.Fatal(err)
			}
			size(tc.w, tc.h)(t, out)
		})
	}
}

func TestEXIFOrientationMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad byte order", []byte("XX\x00\x2a\x00\x00\x00\x08")},
		{"offset past end", []byte("MM\x00\x2a\x00\x00\xff\xff")},
		{"value 9", exifBlock(9)},
		{"truncated entry", exifBlock(6)[:14]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := exifOrientation(tc.b); got != 1 {
				t.Errorf("exifOrientation(%q) = %d, want 1", tc.b, got)
			}
		})
	}
}
