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
	w, h := dst.Rect.Dx(), dst.Rect.Dy()
	xs, ys := chromaShift(src.SubsampleRatio)
	n := uint32(kx * ky)
	sums := make([]uint32, 3*w)
	x0, y0 := src.Rect.Min.X, src.Rect.Min.Y
	for oy := 0; oy < h; oy++ {
		clear(sums)
		for dy := 0; dy < ky; dy++ {
			y := y0 + oy*ky + dy
			yrow := src.Y[(y-y0)*src.YStride:]
			crow := (y>>ys - y0>>ys) * src.CStride
			for ox := 0; ox < w; ox++ {
				s := sums[3*ox : 3*ox+3 : 3*ox+3]
				for x := x0 + ox*kx; x < x0+(ox+1)*kx; x++ {
					ci := crow + x>>xs - x0>>xs
					s[0] += uint32(yrow[x-x0])
					s[1] += uint32(src.Cb[ci])
					s[2] += uint32(src.Cr[ci])
				}
			}
		}
		out := dst.Pix[oy*dst.Stride:]
		for ox := 0; ox < w; ox++ {
			s := sums[3*ox:]
			r, g, b := color.YCbCrToRGB(uint8((s[0]+n/2)/n), uint8((s[1]+n/2)/n),
				uint8((s[2]+n/2)/n))
			out[4*ox], out[4*ox+1], out[4*ox+2], out[4*ox+3] = r, g, b, 255
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
