// icc.go converts pixels tagged with an RGB matrix/TRC ICC profile (Display P3, Adobe
// RGB, ...) to sRGB, so outputs carry no profile and look the same everywhere.
package main

import (
	"encoding/binary"
	"image"
	"math"
)

// iccProfile is the part of an RGB matrix/TRC profile needed to convert to sRGB: a
// linearising table per channel and the matrix from linear source RGB to linear sRGB.
// It is read-only once parsed and safe for concurrent use.
type iccProfile struct {
	lin [3][256]float32
	m   [3][3]float64
}

// srgbD50 holds the sRGB primaries adapted to the D50 connection space (the colorants
// of the usual sRGB profile), columns red, green, blue.
var srgbD50 = [3][3]float64{
	{0.4360747, 0.3850649, 0.1430804},
	{0.2225045, 0.7168786, 0.0606169},
	{0.0139322, 0.0971045, 0.7141733},
}

// parseICC reads an RGB matrix/TRC profile. It returns nil for an empty, malformed or
// unsupported profile (LUT-based, gray, CMYK), whose pixels are then used as they are.
// TODO: LUT-based (A2B0) profiles are rare on the web but would need a CLUT evaluator.
func parseICC(p []byte) *iccProfile {
	if len(p) < 132 || string(p[16:20]) != "RGB " || string(p[20:24]) != "XYZ " {
		return nil
	}
	tags := iccTags(p)
	var src [3][3]float64
	pr := &iccProfile{}
	for c, name := range [3]string{"r", "g", "b"} {
		xyz := tags[name+"XYZ"]
		if len(xyz) < 20 || string(xyz[:4]) != "XYZ " {
			return nil
		}
		for k := 0; k < 3; k++ {
			src[k][c] = s15(xyz[8+4*k:])
		}
		curve, ok := parseTRC(tags[name+"TRC"])
		if !ok {
			return nil
		}
		for v := range pr.lin[c] {
			pr.lin[c][v] = float32(curve(float64(v) / 255))
		}
	}
	inv, ok := invert3(srgbD50)
	if !ok {
		return nil
	}
	pr.m = mul3(inv, src)
	if pr.isSRGB() {
		return nil
	}
	return pr
}

// isSRGB reports whether converting would change nothing visible: the matrix is the
// identity and every curve is the sRGB curve, within 1/500. Camera and editor files
// often carry an sRGB profile; skipping it saves a pass over the pixels.
func (pr *iccProfile) isSRGB() bool {
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			id := 0.0
			if i == j {
				id = 1
			}
			if math.Abs(pr.m[i][j]-id) > 0.002 {
				return false
			}
		}
	}
	for c := range pr.lin {
		for v, l := range pr.lin[c] {
			if math.Abs(float64(l)-srgbDecode(float64(v)/255)) > 0.002 {
				return false
			}
		}
	}
	return true
}

// srgbDecode is the sRGB transfer function from encoded [0, 1] to linear light.
func srgbDecode(v float64) float64 {
	if v <= 0.04045 {
		return v / 12.92
	}
	return math.Pow((v+0.055)/1.055, 2.4)
}

// iccTags maps tag signatures to their data, skipping entries that point outside p.
func iccTags(p []byte) map[string][]byte {
	n := int(binary.BigEndian.Uint32(p[128:]))
	tags := make(map[string][]byte)
	for i := 0; i < n && 132+12*i+12 <= len(p); i++ {
		e := p[132+12*i:]
		off, size := binary.BigEndian.Uint32(e[4:]), binary.BigEndian.Uint32(e[8:])
		if uint64(off)+uint64(size) <= uint64(len(p)) {
			tags[string(e[:4])] = p[off : off+size]
		}
	}
	return tags
}

// s15 reads an ICC s15Fixed16Number.
func s15(b []byte) float64 { return float64(int32(binary.BigEndian.Uint32(b))) / 65536 }

// parseTRC returns the tone curve of a curv or para tag as a function on [0, 1].
func parseTRC(d []byte) (func(float64) float64, bool) {
	if len(d) < 12 {
		return nil, false
	}
	switch string(d[:4]) {
	case "curv":
		return curvCurve(d)
	case "para":
		return paraCurve(d)
	}
	return nil, false
}

// curvCurve reads a curv tag: identity, a gamma, or a table interpolated linearly.
func curvCurve(d []byte) (func(float64) float64, bool) {
	n := int(binary.BigEndian.Uint32(d[8:]))
	switch {
	case n == 0:
		return func(x float64) float64 { return x }, true
	case n == 1 && len(d) >= 14:
		g := float64(binary.BigEndian.Uint16(d[12:])) / 256
		return func(x float64) float64 { return math.Pow(x, g) }, true
	case len(d) < 12+2*n:
		return nil, false
	}
	t := make([]float64, n)
	for i := range t {
		t[i] = float64(binary.BigEndian.Uint16(d[12+2*i:])) / 65535
	}
	return func(x float64) float64 {
		f := x * float64(n-1)
		i := min(int(f), n-2)
		return t[i] + (t[i+1]-t[i])*(f-float64(i))
	}, true
}

// paraCurve reads a parametric curve of function type 0 to 4 (ICC.1 10.18).
func paraCurve(d []byte) (func(float64) float64, bool) {
	counts := [5]int{1, 3, 4, 5, 7}
	typ := int(binary.BigEndian.Uint16(d[8:]))
	if typ > 4 || len(d) < 12+4*counts[typ] {
		return nil, false
	}
	var p [7]float64
	for i := 0; i < counts[typ]; i++ {
		p[i] = s15(d[12+4*i:])
	}
	g, a, b, c, dd, e, f := p[0], p[1], p[2], p[3], p[4], p[5], p[6]
	switch typ {
	case 0:
		a, b, dd = 1, 0, 0
	case 1:
		dd = -b / a
	case 2:
		dd, e, f = -b/a, c, c
		c = 0
	case 3:
		e, f = 0, 0
	}
	return func(x float64) float64 {
		if x >= dd {
			return math.Pow(max(a*x+b, 0), g) + e
		}
		return c*x + f
	}, true
}

// srgbEncode maps linear light in [0, 1] (4096 steps) to 8-bit sRGB.
var srgbEncode = func() (t [4097]uint8) {
	for i := range t {
		v := float64(i) / 4096
		if v <= 0.0031308 {
			v *= 12.92
		} else {
			v = 1.055*math.Pow(v, 1/2.4) - 0.055
		}
		t[i] = uint8(math.Round(v * 255))
	}
	return t
}()

// toSRGB converts the premultiplied pixels of m in place.
func (pr *iccProfile) toSRGB(m *image.RGBA) {
	for y := m.Rect.Min.Y; y < m.Rect.Max.Y; y++ {
		row := m.Pix[m.PixOffset(m.Rect.Min.X, y):m.PixOffset(m.Rect.Max.X, y)]
		for i := 0; i < len(row); i += 4 {
			pr.convertPixel(row[i : i+4 : i+4])
		}
	}
}

// convertPixel converts one premultiplied RGBA pixel in place.
func (pr *iccProfile) convertPixel(p []byte) {
	a := uint32(p[3])
	if a == 0 {
		return
	}
	var lin [3]float64
	for c := 0; c < 3; c++ {
		v := uint32(p[c])
		if a != 255 {
			v = min((v*255+a/2)/a, 255)
		}
		lin[c] = float64(pr.lin[c][v])
	}
	for c := 0; c < 3; c++ {
		l := pr.m[c][0]*lin[0] + pr.m[c][1]*lin[1] + pr.m[c][2]*lin[2]
		v := uint32(srgbEncode[int(min(max(l, 0), 1)*4096+0.5)])
		if a != 255 {
			v = (v*a + 127) / 255
		}
		p[c] = uint8(v)
	}
}

// mul3 returns the matrix product a×b.
func mul3(a, b [3][3]float64) (m [3][3]float64) {
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			for k := 0; k < 3; k++ {
				m[i][j] += a[i][k] * b[k][j]
			}
		}
	}
	return m
}

// invert3 returns the inverse of a, or ok false when a is singular.
func invert3(a [3][3]float64) (m [3][3]float64, ok bool) {
	det := a[0][0]*(a[1][1]*a[2][2]-a[1][2]*a[2][1]) -
		a[0][1]*(a[1][0]*a[2][2]-a[1][2]*a[2][0]) +
		a[0][2]*(a[1][0]*a[2][1]-a[1][1]*a[2][0])
	if math.Abs(det) < 1e-12 {
		return m, false
	}
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			// Cofactor of a[j][i], for the transpose.
			r0, r1 := (j+1)%3, (j+2)%3
			c0, c1 := (i+1)%3, (i+2)%3
			m[i][j] = (a[r0][c0]*a[r1][c1] - a[r0][c1]*a[r1][c0]) / det
		}
	}
	return m, true
}
