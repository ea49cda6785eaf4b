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
		if W == 0 {
			W = roundDiv(w*H, h)
		}
		if H == 0 {
			H = roundDiv(h*W, w)
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

// boxFactor returns the integer box pre-shrink factors for an upright w×h image: the
// largest that keep the cropped area at least twice the output on each axis, so the
// final kernel still has pixels to interpolate. 1 means no pre-shrink.
func (g geometry) boxFactor(w, h int) (kx, ky int) {
	if g.outW == 0 {
		return 1, 1
	}
	kx = max(int(float64(w)*(g.x1-g.x0))/(2*g.outW), 1)
	ky = max(int(float64(h)*(g.y1-g.y0))/(2*g.outH), 1)
	return kx, ky
}

// scaleTo applies g to an upright image with draw.CatmullRom, alpha-weighted since src
// is premultiplied. It returns src itself when g changes nothing.
func scaleTo(src *image.RGBA, g geometry) *image.RGBA {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	if !g.resizes(w, h) {
		return src
	}
	sr := image.Rect(
		int(g.x0*float64(w)+0.5), int(g.y0*float64(h)+0.5),
		int(g.x1*float64(w)+0.5), int(g.y1*float64(h)+0.5))
	sr = sr.Add(src.Rect.Min).Intersect(src.Rect)
	if sr.Empty() {
		// A crop thinner than a pixel: keep its nearest pixel.
		sr = image.Rect(sr.Min.X, sr.Min.Y, sr.Min.X+1, sr.Min.Y+1).Intersect(src.Rect)
	}
	dst := image.NewRGBA(image.Rect(0, 0, g.outW, g.outH))
	xdraw.CatmullRom.Scale(dst, dst.Rect, src, sr, xdraw.Src, nil)
	return dst
}
