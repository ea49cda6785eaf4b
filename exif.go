// exif.go reads the EXIF Orientation tag and turns images upright.
package main

import (
	"encoding/binary"
	"image"
)

// exifOrientation returns the Orientation (tag 0x0112) of IFD0 in a TIFF-structured
// EXIF block, or 1 when the block is absent, malformed or the value is out of 1..8.
func exifOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	off := int(bo.Uint32(t[4:]))
	if off < 8 || off+2 > len(t) {
		return 1
	}
	n := int(bo.Uint16(t[off:]))
	for i := 0; i < n; i++ {
		e := off + 2 + 12*i
		if e+12 > len(t) {
			break
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		// SHORT, count 1: the value sits in the first two bytes of the value field.
		v := int(bo.Uint16(t[e+8:]))
		if bo.Uint16(t[e+2:]) != 3 || v < 1 || v > 8 {
			return 1
		}
		return v
	}
	return 1
}

// swapsAxes reports whether orientation o turns the image a quarter, swapping width and
// height (5 to 8).
func swapsAxes(o int) bool { return o >= 5 && o <= 8 }

// orient returns img turned upright per EXIF orientation o as premultiplied RGBA. It
// returns img itself when it is already RGBA and o is 1; otherwise a new image.
func orient(img image.Image, o int) *image.RGBA {
	src := toRGBA(img)
	if o < 2 || o > 8 {
		return src
	}
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	dw, dh := sw, sh
	if swapsAxes(o) {
		dw, dh = sh, sw
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := 0; y < dh; y++ {
		out := dst.Pix[y*dst.Stride:]
		for x := 0; x < dw; x++ {
			sx, sy := storedPoint(o, x, y, sw, sh)
			i := sy*src.Stride + 4*sx
			copy(out[4*x:4*x+4], src.Pix[i:i+4])
		}
	}
	return dst
}

// storedPoint maps display pixel (x, y) to the stored pixel it shows, for a stored image
// of sw×sh under orientation o. Orientation 6 stores row 0 as the visual right column
// and column 0 as the visual top row; the others follow the EXIF table the same way.
func storedPoint(o, x, y, sw, sh int) (int, int) {
	switch o {
	case 2:
		return sw - 1 - x, y
	case 3:
		return sw - 1 - x, sh - 1 - y
	case 4:
		return x, sh - 1 - y
	case 5:
		return y, x
	case 6:
		return y, sh - 1 - x
	case 7:
		return sw - 1 - y, sh - 1 - x
	case 8:
		return sw - 1 - y, x
	}
	return x, y
}
