// pipeline.go ties the image steps together: decode, orient, resize, colour-convert, encode.
package main

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"time"
)

// Errors of the image pipeline. The handler maps them to statuses: errSourceTooLarge and
// errAnimationTooLarge to 422, errNotImage to 415, errBadImage to 502.
var (
	errSourceTooLarge    = errors.New("source image too large")
	errAnimationTooLarge = errors.New("animation too large")
	errNotImage          = errors.New("not an image")
	errBadImage          = errors.New("origin image could not be decoded")
)

// imageOptions says what variant to make. The caller has already clamped Width/Height to
// thumb_max_* and Quality to [1, thumb_max_quality]. The zero value re-encodes the source
// as JPEG at a default quality with no resize, within the default pixel limits.
type imageOptions struct {
	// Width and Height are the target box in pixels; 0 derives one from the other
	// (rounded to nearest, never 0); both 0 means no resize.
	Width, Height int
	// Fit is "" or "inside" (shrink to fit, never enlarge) or "fill" (cover the box,
	// then crop to exactly Width×Height, enlarging if needed).
	Fit string
	// Gravity is the crop anchor for "fill": "" or "center", "top", "bottom", "left",
	// "right".
	Gravity string
	// Quality is 1..100; 0 means defaultQuality. PNG ignores it.
	Quality int
	// Format is "jpeg", "png", "webp", or "auto-noalpha" (JPEG, or PNG when the
	// result has transparent pixels). "" means "jpeg".
	Format string
	// Lossless asks for WebP lossless output; other formats ignore it.
	Lossless bool
	// Background is what transparency becomes in JPEG output. Its alpha is ignored; the
	// zero value is black, so callers pass the configured colour (white by default).
	Background color.NRGBA
	// WebPMethod is the WebP encoder effort, 0 (fast) to 6 (small).
	WebPMethod int
	// MaxSourcePixels refuses sources with more than width*height pixels, checked from
	// the header before decoding; 0 or less means defaultMaxSourcePixels, since no
	// limit at all lets one small file exhaust memory.
	MaxSourcePixels int64
	// MaxAnimationPixels refuses animated sources with frames*width*height above it
	// when all frames must be decoded; 0 or less means defaultMaxAnimationPixels.
	MaxAnimationPixels int64
	// MaxWidth and MaxHeight bound a side derived from the aspect ratio in
	// "fill" (thumb_max_width and thumb_max_height); 0 means maxOutputSide.
	MaxWidth, MaxHeight int
	// Observe, when set, is told how long each step of a still image took:
	// "decode", "resize" and "encode".
	Observe func(stage string, took time.Duration)
}

// observe reports a step to opt.Observe, when there is one.
func (opt imageOptions) observe(stage string, start time.Time) {
	if opt.Observe != nil {
		opt.Observe(stage, time.Since(start))
	}
}

// The pipeline's policies, each tested in cases_test.go or beside it:
//
//   - Format comes from the bytes (sniffFormat); anything else is errNotImage.
//   - Size limits come from the header (JPEG SOF, PNG IHDR, GIF screen and frames, WebP
//     VP8X/VP8/VP8L) before any pixel buffer exists.
//   - EXIF orientation (first APP1 EXIF block, PNG eXIf, WebP EXIF) is applied before
//     the target size is computed; outputs carry no metadata at all.
//   - ICC: RGB matrix/TRC profiles (Display P3, Adobe RGB, ...) are converted to sRGB;
//     sRGB profiles are skipped; LUT, gray and CMYK profiles are ignored.
//   - PNG gAMA, cHRM and sRGB chunks are ignored: samples are taken as sRGB. Optional
//     chunks with a bad CRC are dropped before decoding, as browsers skip them.
//   - 16-bit samples round to 8 bits as (v*255+32767)/65535.
//   - Resampling averages stored (gamma-encoded) values, not linear light, like
//     browsers and most proxies: 1-px black/white stripes become 128, not 188.
//   - Resampling is alpha-weighted (premultiplied); JPEG output is composited onto
//     Background; PNG and WebP keep alpha.
//   - A truncated or corrupt JPEG is errBadImage (502): image/jpeg returns no partial
//     image. A GIF frame cut off inside its data blocks is dropped, and a GIF left
//     with no frame is errBadImage; frames whose LZW data ends before their last pixel
//     are dropped from the end, and if the first is one of them the GIF shows as a
//     transparent canvas. A frame larger than the logical screen grows the canvas.
//   - Animated GIF/WebP: still outputs show the composited first frame; WebP output
//     stays animated (full-canvas frames, delays and loop count kept).

// Defaults for zero options, the same as the config's.
const (
	defaultQuality            = 75
	defaultMaxSourcePixels    = 50_000_000
	defaultMaxAnimationPixels = 100_000_000
)

// limitOr returns v, or def when v is not positive.
func limitOr(v, def int64) int64 {
	if v <= 0 {
		return def
	}
	return v
}

// transformImage decodes src (format sniffed from its bytes, never from a name), applies
// EXIF orientation, resizes per opt, converts tagged colours to sRGB, and encodes. It
// returns the encoded bytes and the format actually written ("jpeg", "png" or "webp").
// It is safe for concurrent use; no input makes it panic.
func transformImage(ctx context.Context, src []byte, opt imageOptions) (
	out []byte, format string, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, format = nil, ""
			err = fmt.Errorf("%w: %w: %v", errBadImage, errImagePanic, p)
		}
	}()

	info, err := probe(src)
	if err != nil {
		return nil, "", err
	}
	if err := info.checkLimits(opt); err != nil {
		return nil, "", err
	}
	if err := checkOutputSize(info, opt); err != nil {
		return nil, "", err
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}

	if wantAnimated(info, opt) {
		return transformAnimation(ctx, src, info, opt)
	}

	info.decodeScale = jpegDecodeScale(info, opt)
	start := time.Now()
	img, err := decodeStill(src, info)
	if err != nil {
		return nil, "", err
	}
	opt.observe("decode", start)
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}

	start = time.Now()
	res, err := renderFrame(ctx, img, info, opt)
	if err != nil {
		return nil, "", err
	}
	opt.observe("resize", start)
	start = time.Now()
	out, format, err = encodeStill(ctx, res, opt)
	opt.observe("encode", start)
	return out, format, err
}

// renderFrame orients, resizes and colour-converts one decoded image into premultiplied
// RGBA at the size opt asks for. The result may share pixels with img (when nothing
// needed changing), which the caller owns and may then modify.
func renderFrame(ctx context.Context, img image.Image, info *sourceInfo, opt imageOptions) (
	*image.RGBA, error) {
	b := img.Bounds()
	dispW, dispH := b.Dx(), b.Dy()
	// Sizes come from the full image, even when it was decoded smaller: a
	// reduced decode rounds its sides up, which must not move the output's.
	geomW, geomH := dispW, dispH
	if info.decodeScale > 1 {
		geomW, geomH = info.width, info.height
	}
	if swapsAxes(info.orientation) {
		dispW, dispH = dispH, dispW
		geomW, geomH = geomH, geomW
	}
	g := planGeometry(geomW, geomH, opt)
	plan := g.planResample(dispW, dispH)

	// The box pre-shrink works in stored orientation, before turning upright, so its
	// factors swap with the axes.
	kx, ky := plan.kx, plan.ky
	if swapsAxes(info.orientation) {
		kx, ky = ky, kx
	}
	var work image.Image = preShrink(img, kx, ky)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if info.orientation != 1 {
		work = orient(work, info.orientation)
	}
	res := scaleTo(work, g, plan.kernel)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if info.profile != nil {
		info.profile.toSRGB(res)
	}
	return res, nil
}

// wantAnimated reports whether the output must be an animated WebP.
func wantAnimated(info *sourceInfo, opt imageOptions) bool {
	return info.frames > 1 && opt.Format == "webp"
}

// jobMemory estimates the bytes a transform of a source described by info
// will hold at its peak: the decoded image, the working copies of the
// resampler and the encoder's buffers. Admission reserves it before the job
// runs. It errs high rather than low.
func jobMemory(info *sourceInfo, opt imageOptions) int64 {
	srcPixels := int64(info.width) * int64(info.height)
	decoded := srcPixels * 4 // RGBA; YCbCr is smaller, 16-bit PNG is larger
	if info.format == "png" {
		decoded = srcPixels * 8
	}
	if info.format == "jpeg" {
		s := int64(jpegDecodeScale(info, opt))
		decoded = srcPixels / (s * s) * 4
	}
	g := planGeometry(info.width, info.height, opt)
	outW, outH := int64(g.outW), int64(g.outH)
	if outW <= 0 || outH <= 0 {
		outW, outH = int64(info.width), int64(info.height)
	}
	out := outW * outH * 4
	need := decoded*2 + out*3
	if opt.Format == "webp" {
		// The WebAssembly encoder copies the image into its own memory and
		// works in several planes; lossless search needs far more.
		need += 16<<20 + out*8
		if opt.Lossless {
			need += out * 40
		}
	}
	if info.frames > 1 && opt.Format == "webp" {
		need += int64(info.frames) * (srcPixels*4 + out)
	}
	return need
}

// jpegDecodeScale is the largest reduction (1, 2, 4 or 8) a JPEG source can
// be decoded at for opt while keeping at least as many pixels as the output
// needs from it: the reduced IDCT then does most of the shrinking, for the
// price of the entropy decoding alone, and the final kernel has at least the
// output's resolution to work from.
func jpegDecodeScale(info *sourceInfo, opt imageOptions) int {
	if info.format != "jpeg" {
		return 1
	}
	w, h := info.width, info.height
	if swapsAxes(info.orientation) {
		w, h = h, w
	}
	g := planGeometry(w, h, opt)
	if !g.resizes(w, h) {
		return 1
	}
	needW := int(math.Ceil(float64(g.outW) / (g.x1 - g.x0)))
	needH := int(math.Ceil(float64(g.outH) / (g.y1 - g.y0)))
	if swapsAxes(info.orientation) {
		needW, needH = needH, needW
	}
	return jpegScaleFor(info.width, info.height, needW, needH)
}

// checkOutputSize refuses, before anything is decoded, an output no encoder can
// hold or larger than the source budget: a source converted at full size
// (50000×1 to WebP) or enlarged by a crop.
func checkOutputSize(info *sourceInfo, opt imageOptions) error {
	w, h := info.width, info.height
	if swapsAxes(info.orientation) {
		w, h = h, w
	}
	if g := planGeometry(w, h, opt); g.outW != 0 {
		w, h = g.outW, g.outH
	}
	limit := limitOr(opt.MaxSourcePixels, defaultMaxSourcePixels)
	if w > maxOutputSide || h > maxOutputSide || int64(w)*int64(h) > limit {
		return fmt.Errorf("%w: output %dx%d is over %d pixels a side or %d in all",
			errSourceTooLarge, w, h, maxOutputSide, limit)
	}
	return nil
}
