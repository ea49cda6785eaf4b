// resize.go is geometry and scaling: target size, crop, box pre-shrink, final kernel.
package main

import (
	"image"

	xdraw "golang.org/x/image/draw"
)

// geometry is the resize plan for an upright image: the output size and the part of the
// image it shows, as fractions of the width and height so that it survives a pre-shrink.
// The zero value (outW 0) means no resize.
type geometry struct {
	outW, outH     int
	x0, y0, x1, y1 float64 // the crop, in [0, 1]
}

// planGeometry works out the output for an upright w×h image. Derived sides round to
// nearest and are never 0; "inside" never enlarges; "fill" covers W×H (enlarging if it
// must) and crops to exactly W×H at opt.Gravity.
func planGeometry(w, h int, opt imageOptions) geometry {
	W, H := max(opt.Width, 0), max(opt.Height, 0)
	full := geometry{x1: 1, y1: 1}
	if W == 0 && H == 0 {
		return full
	}
	if opt.Fit == "fill" {
		// A derived side follows the aspect ratio, but no further than the
		// largest side a request may ask for: a 10000×1 strip filled to a
		// height of 1080 would otherwise be 10.8 million pixels wide.
		if W == 0 {
			W = clampSide(roundDiv(w*H, h), opt.MaxWidth)
		}
		if H == 0 {
			H = clampSide(roundDiv(h*W, w), opt.MaxHeight)
		}
		return fillGeometry(w, h, W, H, opt.Gravity)
	}

	// Inside: the side that limits the scale is met exactly; the other is derived.
	g := full
	if H == 0 || (W != 0 && W*h <= H*w) {
		g.outW, g.outH = W, roundDiv(h*W, w)
	} else {
		g.outW, g.outH = roundDiv(w*H, h), H
	}
	if g.outW >= w && g.outH >= h {
		return full
	}
	return g
}

// clampSide bounds a derived side by limit (0: maxOutputSide).
func clampSide(v, limit int) int {
	if limit <= 0 {
		limit = maxOutputSide
	}
	return max(1, min(v, limit))
}

// maxOutputSide is the longest side any encoder takes (WebP's limit).
const maxOutputSide = 16383

// fillGeometry scales w×h to cover W×H and crops the overflow at gravity.
func fillGeometry(w, h, W, H int, gravity string) geometry {
	g := geometry{outW: W, outH: H, x1: 1, y1: 1}
	if W*h > H*w {
		// Wider box: all of the width shows, part of the height.
		frac := float64(H*w) / float64(W*h)
		g.y0 = anchor(gravity, "top", "bottom", frac)
		g.y1 = g.y0 + frac
	} else {
		frac := float64(W*h) / float64(H*w)
		g.x0 = anchor(gravity, "left", "right", frac)
		g.x1 = g.x0 + frac
	}
	return g
}

// anchor places a window of size frac in [0, 1]: at the start for gravity lo, at the
// end for hi, centred otherwise.
func anchor(gravity, lo, hi string, frac float64) float64 {
	switch gravity {
	case lo:
		return 0
	case hi:
		return 1 - frac
	}
	return (1 - frac) / 2
}

// roundDiv returns a/c rounded to nearest, at least 1.
func roundDiv(a, c int) int {
	return max((2*a+c)/(2*c), 1)
}

// resizes reports whether the plan changes the pixels at all for a w×h image.
func (g geometry) resizes(w, h int) bool {
	return g.outW != 0 && (g.outW != w || g.outH != h || g.x0 != 0 || g.y0 != 0 ||
		g.x1 != 1 || g.y1 != 1)
}

// fastPathPixels is the largest input the final CatmullRom gets: x/image/draw's
// CatmullRom costs about 35-80 ns per input pixel here (BenchmarkResize), so a 1080p
// photo to 1200 px would spend over 100 ms in it. Above it the box shrinks deeper and,
// if that is not enough, ApproxBiLinear finishes.
const fastPathPixels = 100_000

// resamplePlan says how to get from an upright w×h image to g: box factors for the
// pre-shrink (in upright axes) and the final kernel.
type resamplePlan struct {
	kx, ky int
	kernel xdraw.Interpolator
}

// planResample keeps at least twice the output's pixels for CatmullRom when that input
// is small. Otherwise it box-shrinks to between one and two times the output, and
// finishes with CatmullRom if that is small enough, else with ApproxBiLinear, which is
// close to an area average at those ratios (a 1080p photo to 1200 px).
func (g geometry) planResample(w, h int) resamplePlan {
	if g.outW == 0 {
		return resamplePlan{1, 1, xdraw.CatmullRom}
	}
	cw, ch := float64(w)*(g.x1-g.x0), float64(h)*(g.y1-g.y0)
	factors := func(margin int) (int, int, bool) {
		kx := max(int(cw)/(margin*g.outW), 1)
		ky := max(int(ch)/(margin*g.outH), 1)
		return kx, ky, (w/kx)*(h/ky) <= fastPathPixels
	}
	if kx, ky, small := factors(2); small {
		return resamplePlan{kx, ky, xdraw.CatmullRom}
	}
	kx, ky, small := factors(1)
	if small {
		return resamplePlan{kx, ky, xdraw.CatmullRom}
	}
	return resamplePlan{kx, ky, xdraw.ApproxBiLinear}
}

// scaleTo applies g to an upright image with kernel; src is premultiplied (or opaque),
// so the result is alpha-weighted. It returns src as RGBA when g changes nothing.
func scaleTo(src image.Image, g geometry, kernel xdraw.Interpolator) *image.RGBA {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if !g.resizes(w, h) {
		return toRGBA(src)
	}
	sr := image.Rect(
		int(g.x0*float64(w)+0.5), int(g.y0*float64(h)+0.5),
		int(g.x1*float64(w)+0.5), int(g.y1*float64(h)+0.5))
	sr = sr.Add(b.Min).Intersect(b)
	if sr.Empty() {
		// A crop thinner than a pixel: keep its nearest pixel.
		sr = image.Rect(sr.Min.X, sr.Min.Y, sr.Min.X+1, sr.Min.Y+1).Intersect(b)
	}
	dst := image.NewRGBA(image.Rect(0, 0, g.outW, g.outH))
	kernel.Scale(dst, dst.Rect, src, sr, xdraw.Src, nil)
	return dst
}
