// box.go is the integer box pre-shrink: a fast, alpha-weighted average of kx×ky blocks.
package main

import (
	"image"
	"image/color"
)

// preShrink averages kx×ky blocks of img into a new premultiplied RGBA image of
// floor(w/kx)×floor(h/ky) pixels (the few remainder pixels at the right and bottom edges
// are dropped). Transparent pixels weigh nothing, so their colour cannot bleed in. It
// returns img itself when kx and ky are 1. YCbCr is averaged before conversion, which is
// the same as converting first since the conversion is affine.
func preShrink(img image.Image, kx, ky int) image.Image {
	b := img.Bounds()
	kx, ky = min(max(kx, 1), b.Dx()), min(max(ky, 1), b.Dy())
	if kx == 1 && ky == 1 {
		return img
	}
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx()/kx, b.Dy()/ky))
	switch m := img.(type) {
	case *image.YCbCr:
		boxYCbCr(dst, m, kx, ky)
	case *image.NRGBA:
		boxNRGBA(dst, m, kx, ky)
	case *image.Gray:
		boxGray(dst, m, kx, ky)
	default:
		boxRGBA(dst, toRGBA(img), kx, ky)
	}
	return dst
}

// boxRGBA averages premultiplied samples as they are.
func boxRGBA(dst, src *image.RGBA, kx, ky int) {
	w, h := dst.Rect.Dx(), dst.Rect.Dy()
	n := uint32(kx * ky)
	sums := make([]uint32, 4*w)
	for oy := 0; oy < h; oy++ {
		clear(sums)
		for dy := 0; dy < ky; dy++ {
			row := src.Pix[src.PixOffset(src.Rect.Min.X, src.Rect.Min.Y+oy*ky+dy):]
			for ox := 0; ox < w; ox++ {
				s := sums[4*ox : 4*ox+4 : 4*ox+4]
				p := row[4*ox*kx : 4*(ox+1)*kx]
				for i := 0; i+4 <= len(p); i += 4 {
					s[0] += uint32(p[i])
					s[1] += uint32(p[i+1])
					s[2] += uint32(p[i+2])
					s[3] += uint32(p[i+3])
				}
			}
		}
		out := dst.Pix[oy*dst.Stride : oy*dst.Stride+4*w]
		for i, s := range sums {
			out[i] = uint8((s + n/2) / n)
		}
	}
}

// boxNRGBA premultiplies while summing: colour sums are weighted by alpha.
func boxNRGBA(dst *image.RGBA, src *image.NRGBA, kx, ky int) {
	w, h := dst.Rect.Dx(), dst.Rect.Dy()
	n := uint32(kx * ky)
	sums := make([]uint32, 4*w)
	for oy := 0; oy < h; oy++ {
		clear(sums)
		for dy := 0; dy < ky; dy++ {
			row := src.Pix[src.PixOffset(src.Rect.Min.X, src.Rect.Min.Y+oy*ky+dy):]
			for ox := 0; ox < w; ox++ {
				s := sums[4*ox : 4*ox+4 : 4*ox+4]
				p := row[4*ox*kx : 4*(ox+1)*kx]
				for i := 0; i+4 <= len(p); i += 4 {
					a := uint32(p[i+3])
					s[0] += uint32(p[i]) * a
					s[1] += uint32(p[i+1]) * a
					s[2] += uint32(p[i+2]) * a
					s[3] += a
				}
			}
		}
		out := dst.Pix[oy*dst.Stride : oy*dst.Stride+4*w]
		for i := 0; i < len(out); i += 4 {
			d := 255 * n
			out[i] = uint8((sums[i] + d/2) / d)
			out[i+1] = uint8((sums[i+1] + d/2) / d)
			out[i+2] = uint8((sums[i+2] + d/2) / d)
			out[i+3] = uint8((sums[i+3] + n/2) / n)
		}
	}
}

// boxGray averages gray samples into opaque gray RGBA.
func boxGray(dst *image.RGBA, src *image.Gray, kx, ky int) {
	w, h := dst.Rect.Dx(), dst.Rect.Dy()
	n := uint32(kx * ky)
	sums := make([]uint32, w)
	for oy := 0; oy < h; oy++ {
		clear(sums)
		for dy := 0; dy < ky; dy++ {
			row := src.Pix[src.PixOffset(src.Rect.Min.X, src.Rect.Min.Y+oy*ky+dy):]
			for ox := range sums {
				for _, v := range row[ox*kx : (ox+1)*kx] {
					sums[ox] += uint32(v)
				}
			}
		}
		out := dst.Pix[oy*dst.Stride:]
		for ox, s := range sums {
			v := uint8((s + n/2) / n)
			out[4*ox], out[4*ox+1], out[4*ox+2], out[4*ox+3] = v, v, v, 255
		}
	}
}

// boxYCbCr averages Y, Cb and Cr over each block, then converts once per output pixel.
func boxYCbCr(dst *image.RGBA, src *image.YCbCr, kx, ky int) {
	if src.SubsampleRatio == image.YCbCrSubsampleRatio420 && kx%2 == 0 && ky%2 == 0 &&
		src.Rect.Min.X%2 == 0 && src.Rect.Min.Y%2 == 0 {
		boxYCbCr420(dst, src, kx, ky)
		return
	}
	w, h := dst.Rect.Dx(), dst.Rect.Dy()
	xs, ys := chromaShift(src.SubsampleRatio)
	n := uint32(kx * ky)
	x0, y0 := src.Rect.Min.X, src.Rect.Min.Y
	for oy := 0; oy < h; oy++ {
		out := dst.Pix[oy*dst.Stride : oy*dst.Stride+4*w]
		for ox := 0; ox < w; ox++ {
			var sy, sb, sr uint32
			bx := x0 + ox*kx
			for dy := 0; dy < ky; dy++ {
				y := y0 + oy*ky + dy
				for _, v := range src.Y[(y-y0)*src.YStride+bx-x0:][:kx] {
					sy += uint32(v)
				}
				crow := (y>>ys - y0>>ys) * src.CStride
				cb, cr := src.Cb[crow:], src.Cr[crow:]
				for x := bx; x < bx+kx; x++ {
					ci := x>>xs - x0>>xs
					sb += uint32(cb[ci])
					sr += uint32(cr[ci])
				}
			}
			r, g, b := color.YCbCrToRGB(uint8((sy+n/2)/n), uint8((sb+n/2)/n),
				uint8((sr+n/2)/n))
			p := out[4*ox : 4*ox+4 : 4*ox+4]
			p[0], p[1], p[2], p[3] = r, g, b, 255
		}
	}
}

// boxYCbCr420 is boxYCbCr for 4:2:0 with even factors: each block then covers whole
// chroma samples, so the three planes are box-summed on their own, the chroma planes
// with half the factors, reading every sample once.
func boxYCbCr420(dst *image.RGBA, src *image.YCbCr, kx, ky int) {
	w, h := dst.Rect.Dx(), dst.Rect.Dy()
	ys := sumPlane(src.Y, src.YStride, w, h, kx, ky)
	cbs := sumPlane(src.Cb, src.CStride, w, h, kx/2, ky/2)
	crs := sumPlane(src.Cr, src.CStride, w, h, kx/2, ky/2)
	n, nc := uint32(kx*ky), uint32(kx*ky/4)
	for oy := 0; oy < h; oy++ {
		out := dst.Pix[oy*dst.Stride : oy*dst.Stride+4*w]
		for ox := 0; ox < w; ox++ {
			i := oy*w + ox
			r, g, b := color.YCbCrToRGB(uint8((ys[i]+n/2)/n), uint8((cbs[i]+nc/2)/nc),
				uint8((crs[i]+nc/2)/nc))
			p := out[4*ox : 4*ox+4 : 4*ox+4]
			p[0], p[1], p[2], p[3] = r, g, b, 255
		}
	}
}

// sumPlane returns the sums of the kx×ky blocks of an 8-bit plane whose top-left sample
// is pix[0], for w×h blocks, row by row.
func sumPlane(pix []byte, stride, w, h, kx, ky int) []uint32 {
	out := make([]uint32, w*h)
	for oy := 0; oy < h; oy++ {
		acc := out[oy*w : (oy+1)*w]
		for dy := 0; dy < ky; dy++ {
			addRowSums(acc, pix[(oy*ky+dy)*stride:], kx)
		}
	}
	return out
}

// addRowSums adds the sums of consecutive runs of kx samples of row to acc, with the
// common small factors unrolled (the generic loop costs about twice as much).
func addRowSums(acc []uint32, row []byte, kx int) {
	row = row[:len(acc)*kx]
	switch kx {
	case 2:
		for i := range acc {
			r := row[2*i : 2*i+2 : 2*i+2]
			acc[i] += uint32(r[0]) + uint32(r[1])
		}
	case 3:
		for i := range acc {
			r := row[3*i : 3*i+3 : 3*i+3]
			acc[i] += uint32(r[0]) + uint32(r[1]) + uint32(r[2])
		}
	case 4:
		for i := range acc {
			r := row[4*i : 4*i+4 : 4*i+4]
			acc[i] += uint32(r[0]) + uint32(r[1]) + uint32(r[2]) + uint32(r[3])
		}
	default:
		for i := range acc {
			r := row[i*kx : i*kx+kx : i*kx+kx]
			var s uint32
			for len(r) >= 4 {
				s += uint32(r[0]) + uint32(r[1]) + uint32(r[2]) + uint32(r[3])
				r = r[4:]
			}
			for _, v := range r {
				s += uint32(v)
			}
			acc[i] += s
		}
	}
}

// chromaShift returns how far x and y shift right to index the chroma planes.
func chromaShift(r image.YCbCrSubsampleRatio) (xs, ys int) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return 1, 0
	case image.YCbCrSubsampleRatio420:
		return 1, 1
	case image.YCbCrSubsampleRatio440:
		return 0, 1
	case image.YCbCrSubsampleRatio411:
		return 2, 0
	case image.YCbCrSubsampleRatio410:
		return 2, 1
	}
	return 0, 0
}
