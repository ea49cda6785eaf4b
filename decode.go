// decode.go sniffs formats, reads headers (size, orientation, profile, frames) and decodes.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"strings"

	"github.com/gen2brain/webp"
)

// sourceInfo is what the headers of a source say, read without decoding pixels.
type sourceInfo struct {
	format        string // "jpeg", "png", "gif" or "webp"
	width, height int    // stored canvas size, before orientation
	frames        int    // 1 for still images
	loop          int    // WebP loop count of an animation: 0 forever, n plays
	orientation   int    // EXIF orientation 1..8 (1 when absent)
	profile       *iccProfile
	gif           *gifLayout // nil unless format is "gif"
	decodeScale   int        // JPEG: decoded at 1/decodeScale of its size (1, 2, 4, 8)
}

// sniffFormat names the image format of the bytes: "jpeg", "png", "gif", "webp", or "".
func sniffFormat(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\xff\xd8\xff")):
		return "jpeg"
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return "gif"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "webp"
	}
	return ""
}

// probe reads the headers of src. It allocates nothing in proportion to the pixel count.
func probe(src []byte) (*sourceInfo, error) {
	info := &sourceInfo{format: sniffFormat(src), frames: 1, orientation: 1}
	var err error
	switch info.format {
	case "jpeg":
		err = probeJPEG(src, info)
	case "png":
		err = probePNG(src, info)
	case "gif":
		err = probeGIF(src, info)
	case "webp":
		err = probeWebP(src, info)
	default:
		return nil, errNotImage
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s header: %w", errBadImage, info.format, err)
	}
	if info.width <= 0 || info.height <= 0 {
		return nil, fmt.Errorf("%w: %s has no pixels", errBadImage, info.format)
	}
	return info, nil
}

// checkLimits refuses sources over opt's pixel budgets. The animation budget applies
// when every frame will be decoded: animated WebP output, or any animated WebP (its
// decoder always decodes all frames).
func (s *sourceInfo) checkLimits(opt imageOptions) error {
	px := int64(s.width) * int64(s.height)
	if limit := limitOr(opt.MaxSourcePixels, defaultMaxSourcePixels); px > limit {
		return fmt.Errorf("%w: %dx%d is over %d pixels",
			errSourceTooLarge, s.width, s.height, limit)
	}
	allFrames := wantAnimated(s, opt) || (s.format == "webp" && s.frames > 1)
	limit := limitOr(opt.MaxAnimationPixels, defaultMaxAnimationPixels)
	if allFrames && px*int64(s.frames) > limit {
		return fmt.Errorf("%w: %d frames of %dx%d is over %d pixels",
			errAnimationTooLarge, s.frames, s.width, s.height, limit)
	}
	return nil
}

// probeJPEG reads the SOF size, the first EXIF orientation and the ICC profile.
func probeJPEG(src []byte, info *sourceInfo) error {
	ji, err := readJPEGInfo(src) // the decoder's own header reader: it decodes the file
	if err != nil {
		return err
	}
	info.width, info.height = ji.Width, ji.Height
	exif, icc := jpegMetadata(src)
	info.orientation = exifOrientation(exif)
	info.profile = parseICC(icc)
	return nil
}

// jpegMetadata returns the first EXIF block and the reassembled ICC profile of a JPEG,
// scanning the marker segments before the first scan.
func jpegMetadata(b []byte) (exif, icc []byte) {
	var parts [256][]byte
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xff {
			break
		}
		m := b[i+1]
		if m == 0xff {
			i++
			continue
		}
		if m == 0xda || m == 0xd9 {
			break
		}
		n := int(b[i+2])<<8 | int(b[i+3])
		if n < 2 || i+2+n > len(b) {
			break
		}
		seg := b[i+4 : i+2+n]
		switch {
		case m == 0xe1 && exif == nil && bytes.HasPrefix(seg, []byte("Exif\x00\x00")):
			exif = seg[6:]
		case m == 0xe2 && len(seg) > 14 && bytes.HasPrefix(seg, []byte("ICC_PROFILE\x00")):
			parts[seg[12]] = seg[14:]
		}
		i += 2 + n
	}
	for _, p := range parts {
		icc = append(icc, p...)
	}
	return exif, icc
}

// decodeStill decodes the still image to work on: the image itself, or the composited
// first frame of an animation.
func decodeStill(src []byte, info *sourceInfo) (image.Image, error) {
	var img image.Image
	var err error
	switch info.format {
	case "jpeg":
		img, err = decodeJPEGSource(src, info)
	case "png":
		img, err = png.Decode(bytes.NewReader(dropBadAncillary(src)))
	case "gif":
		img, err = decodeGIFFirst(src, info)
	case "webp":
		img, err = decodeWebPStill(src)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errBadImage, info.format, err)
	}
	return normalize(img), nil
}

// decodeJPEGSource decodes a JPEG with the project's decoder at
// info.decodeScale. A truncated file is refused (a 502 for the client,
// although the decoder could show what it has: a half-gray image cached as
// good would be worse). A file the decoder does not implement (arithmetic
// coding, 12-bit) gets one more try with image/jpeg at full size.
func decodeJPEGSource(src []byte, info *sourceInfo) (image.Image, error) {
	scale := max(info.decodeScale, 1)
	img, err := decodeJPEG(src, scale)
	switch {
	case err == nil:
		return img, nil
	case errors.Is(err, errJPEGTruncated), errors.Is(err, errJPEGTooLarge):
		return nil, err
	}
	std, serr := jpeg.Decode(bytes.NewReader(src))
	if serr != nil {
		return nil, err
	}
	info.decodeScale = 1
	return std, nil
}

// decodeWebPStill decodes a WebP still, or the composited first frame of an animation,
// as premultiplied RGBA. It goes through webp.DecodeAll, libwebp's RGBA path, because
// webp.Decode returns the raw limited-range 4:2:0 YUV planes as an image.NYCbCrA, which
// image/color reads as full-range JPEG samples (pure red shows as 239,15,14) and which
// loses the chroma detail of lossless files.
func decodeWebPStill(src []byte) (image.Image, error) {
	webpInit()
	all, err := webp.DecodeAll(bytes.NewReader(src))
	if err != nil {
		return nil, err
	}
	if len(all.Image) == 0 {
		return nil, errors.New("no frames")
	}
	return all.Image[0], nil
}

// normalize turns decoder output into a type the resizer reads fast: YCbCr, RGBA,
// NRGBA and Gray stay; 16-bit images round to 8 bits as (v*255+32767)/65535; anything
// else becomes RGBA.
func normalize(img image.Image) image.Image {
	switch m := img.(type) {
	case *image.YCbCr, *image.RGBA, *image.NRGBA, *image.Gray:
		return m
	case *image.NRGBA64:
		return nrgba64To8(m)
	case *image.RGBA64:
		return rgba64To8(m)
	case *image.Gray16:
		return gray16To8(m)
	}
	return toRGBA(img)
}

// toRGBA returns img as a premultiplied RGBA image with its origin at (0, 0).
func toRGBA(img image.Image) *image.RGBA {
	if m, ok := img.(*image.RGBA); ok && m.Rect.Min == (image.Point{}) {
		return m
	}
	b := img.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(dst, dst.Rect, img, b.Min, draw.Src)
	return dst
}

// round16 maps a 16-bit sample to 8 bits to nearest.
func round16(v uint32) uint8 { return uint8((v*255 + 32767) / 65535) }

// nrgba64To8 rounds every 16-bit sample of m to 8 bits.
func nrgba64To8(m *image.NRGBA64) *image.NRGBA {
	b := m.Bounds()
	dst := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*b.Dx()]
		for i := range out {
			out[i] = round16(uint32(row[2*i])<<8 | uint32(row[2*i+1]))
		}
	}
	return dst
}

// rgba64To8 un-premultiplies in 16 bits, then rounds each sample to 8 bits.
func rgba64To8(m *image.RGBA64) *image.NRGBA {
	b := m.Bounds()
	dst := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*b.Dx()]
		for i := 0; i < len(out); i += 4 {
			a := uint32(row[2*i+6])<<8 | uint32(row[2*i+7])
			for c := 0; c < 3; c++ {
				v := uint32(row[2*(i+c)])<<8 | uint32(row[2*(i+c)+1])
				if a != 0xffff && a != 0 {
					v = min(v*0xffff/a, 0xffff)
				}
				out[i+c] = round16(v)
			}
			out[i+3] = round16(a)
		}
	}
	return dst
}

// gray16To8 rounds every 16-bit sample of m to 8 bits.
func gray16To8(m *image.Gray16) *image.Gray {
	b := m.Bounds()
	dst := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		row := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
		out := dst.Pix[y*dst.Stride : y*dst.Stride+b.Dx()]
		for i := range out {
			out[i] = round16(uint32(row[2*i])<<8 | uint32(row[2*i+1]))
		}
	}
	return dst
}

// isShortGIF reports whether a GIF decode error means the image data ran out.
func isShortGIF(err error) bool {
	return err != nil && strings.Contains(err.Error(), "not enough image data")
}
