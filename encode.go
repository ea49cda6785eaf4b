// encode.go is format choice and encoders: JPEG, PNG and WebP from premultiplied RGBA.
package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"

	"github.com/gen2brain/webp"
)

// pngEncoder trades a few percent of size for speed; see BenchmarkEncodePNG.
var pngEncoder = png.Encoder{CompressionLevel: png.BestSpeed}

// outputFormat resolves opt.Format for img: "auto-noalpha" becomes PNG when img has
// transparent pixels and JPEG otherwise; "" becomes JPEG.
func outputFormat(img *image.RGBA, format string) (string, error) {
	switch format {
	case "", "jpeg":
		return "jpeg", nil
	case "png", "webp":
		return format, nil
	case "auto-noalpha":
		if img.Opaque() {
			return "jpeg", nil
		}
		return "png", nil
	}
	return "", fmt.Errorf("output format %q: want jpeg, png, webp or auto-noalpha", format)
}

// encodeStill encodes img (which it may modify) and returns the bytes and the format
// written. No metadata is written: no EXIF (so no stale orientation), no profile (pixels
// are sRGB already).
func encodeStill(ctx context.Context, img *image.RGBA, opt imageOptions) ([]byte, string, error) {
	format, err := outputFormat(img, opt.Format)
	if err != nil {
		return nil, "", err
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	var buf bytes.Buffer
	switch format {
	case "jpeg":
		flatten(img, opt.Background)
		q := quality(opt)
		err = writeJPEG(&buf, img, jpegEncodeOptions{Quality: q,
			Subsample: jpegSubsampling(img.Rect, q)})
	case "png":
		err = pngEncoder.Encode(&buf, pngImage(img))
	case "webp":
		err = encodeWebP(&buf, img, opt)
	}
	if err != nil {
		return nil, "", fmt.Errorf("encode %s: %w", format, err)
	}
	return buf.Bytes(), format, nil
}

// The JPEG chroma policy: full-resolution (4:4:4) chroma from jpegFullChromaQuality up,
// where the caller pays for detail and halved chroma would be the largest loss left, and for
// outputs of at most jpegFullChromaPixels, small thumbnails where one 4:2:0 chroma sample
// covers a visible share of the picture (colours bleed across edges) and the extra bytes are
// a few hundred. Everything else gets 4:2:0, a quarter of the chroma samples, the usual
// trade for photos. See BenchmarkWriteJPEG for sizes and speeds of both.
const (
	jpegFullChromaQuality = 90
	jpegFullChromaPixels  = 128 * 128
)

// jpegSubsampling returns the chroma subsampling writeJPEG should use for an output of
// bounds b at quality q (1..100): "444" or "420", as the policy above says.
func jpegSubsampling(b image.Rectangle, q int) string {
	if q >= jpegFullChromaQuality || b.Dx()*b.Dy() <= jpegFullChromaPixels {
		return "444"
	}
	return "420"
}

// quality returns opt.Quality clamped to 1..100, or defaultQuality for 0.
func quality(opt imageOptions) int {
	if opt.Quality == 0 {
		return defaultQuality
	}
	return min(max(opt.Quality, 1), 100)
}

// encodeWebP writes img as a still WebP: lossy at opt's quality, or lossless.
func encodeWebP(buf *bytes.Buffer, img *image.RGBA, opt imageOptions) error {
	webpInit()
	return webp.Encode(buf, unpremultiply(img), webp.Options{
		Quality:  quality(opt),
		Lossless: opt.Lossless,
		Method:   min(max(opt.WebPMethod, 0), 6),
	})
}

// flatten composites img onto the opaque colour bg in place.
func flatten(img *image.RGBA, bg color.NRGBA) {
	if img.Opaque() {
		return
	}
	for i := 0; i < len(img.Pix); i += 4 {
		p := img.Pix[i : i+4 : i+4]
		t := 255 - uint32(p[3])
		p[0] = uint8(uint32(p[0]) + (uint32(bg.R)*t+127)/255)
		p[1] = uint8(uint32(p[1]) + (uint32(bg.G)*t+127)/255)
		p[2] = uint8(uint32(p[2]) + (uint32(bg.B)*t+127)/255)
		p[3] = 255
	}
}

// pngImage returns what to hand the PNG encoder: img itself when opaque (written as
// RGB), else its unpremultiplied copy (written as RGBA, rounded rather than truncated).
func pngImage(img *image.RGBA) image.Image {
	if img.Opaque() {
		return img
	}
	return unpremultiply(img)
}

// unpremultiply returns a non-premultiplied copy of img, rounding to nearest.
func unpremultiply(img *image.RGBA) *image.NRGBA {
	b := img.Rect
	dst := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		src := img.Pix[img.PixOffset(b.Min.X, b.Min.Y+y):]
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*b.Dx()]
		for i := 0; i < len(out); i += 4 {
			a := uint32(src[i+3])
			out[i+3] = uint8(a)
			switch a {
			case 0:
				// Transparent pixels keep black, so no colour hides under them.
			case 255:
				copy(out[i:i+3], src[i:i+3])
			default:
				for c := 0; c < 3; c++ {
					out[i+c] = uint8(min((uint32(src[i+c])*255+a/2)/a, 255))
				}
			}
		}
	}
	return dst
}
