// icc_test.go checks ICC parsing, tone curves and the conversion to sRGB.
package main

import (
	"encoding/binary"
	"image"
	"image/color"
	"math"
	"testing"
)

// iccFixture builds a minimal RGB matrix/TRC profile with the given colorants (columns
// r, g, b of a D50 matrix) and one curve tag shared by the three channels.
func iccFixture(m [3][3]float64, curve []byte) []byte {
	var tags []byte
	var data []byte
	const n = 6
	base := 132 + 12*n
	add := func(sig string, d []byte) {
		tags = append(tags, sig...)
		tags = binary.BigEndian.AppendUint32(tags, uint32(base+len(data)))
		tags = binary.BigEndian.AppendUint32(tags, uint32(len(d)))
		data = append(data, d...)
		for len(data)%4 != 0 {
			data = append(data, 0)
		}
	}
	for c, name := range []string{"r", "g", "b"} {
		xyz := []byte("XYZ \x00\x00\x00\x00")
		for k := 0; k < 3; k++ {
			xyz = binary.BigEndian.AppendUint32(xyz, uint32(int32(math.Round(m[k][c]*65536))))
		}
		add(name+"XYZ", xyz)
	}
	for _, name := range []string{"r", "g", "b"} {
		add(name+"TRC", curve)
	}
	p := make([]byte, 128)
	copy(p[16:], "RGB XYZ ")
	p = binary.BigEndian.AppendUint32(p, n)
	p = append(p, tags...)
	p = append(p, data...)
	binary.BigEndian.PutUint32(p, uint32(len(p)))
	return p
}

func paraTag(typ uint16, params ...float64) []byte {
	b := []byte("para\x00\x00\x00\x00")
	b = binary.BigEndian.AppendUint16(b, typ)
	b = append(b, 0, 0)
	for _, v := range params {
		b = binary.BigEndian.AppendUint32(b, uint32(int32(math.Round(v*65536))))
	}
	return b
}

func gammaTag(g float64) []byte {
	b := []byte("curv\x00\x00\x00\x00\x00\x00\x00\x01")
	return binary.BigEndian.AppendUint16(b, uint16(g*256))
}

var srgbCurve = paraTag(3, 2.4, 1/1.055, 0.055/1.055, 1/12.92, 0.04045)

func TestParseICCSkipsSRGB(t *testing.T) {
	if pr := parseICC(iccFixture(srgbD50, srgbCurve)); pr != nil {
		t.Errorf("parseICC(sRGB) = %+v, want nil (nothing to convert)", pr.m)
	}
}

func TestParseICCRejects(t *testing.T) {
	good := iccFixture(srgbD50, gammaTag(2.2))
	cmyk := append([]byte(nil), good...)
	copy(cmyk[16:], "CMYK")
	for _, tc := range []struct {
		name string
		p    []byte
	}{{"empty", nil}, {"cmyk", cmyk}, {"truncated", good[:200]},
		{"bad curve", iccFixture(srgbD50, []byte("mft2\x00\x00\x00\x00\x00\x00\x00\x00"))}} {
		if pr := parseICC(tc.p); pr != nil {
			t.Errorf("parseICC(%s) = %v, want nil", tc.name, pr.m)
		}
	}
	if parseICC(good) == nil {
		t.Error("parseICC(gamma 2.2 sRGB primaries) = nil, want a profile")
	}
}

// TestICCGammaToSRGB: sRGB primaries with a plain 2.2 gamma differ from sRGB only in the
// curve: mid grey 128 decodes to 0.2195 linear and re-encodes to sRGB 129.
func TestICCGammaToSRGB(t *testing.T) {
	pr := parseICC(iccFixture(srgbD50, gammaTag(2.2)))
	m := image.NewRGBA(image.Rect(0, 0, 2, 1))
	m.SetRGBA(0, 0, color.RGBA{128, 128, 128, 255})
	m.SetRGBA(1, 0, color.RGBA{64, 64, 64, 128}) // premultiplied 128 grey at half alpha
	pr.toSRGB(m)
	if got := m.RGBAAt(0, 0); absDiff(got.R, 129) > 1 || got.R != got.G || got.G != got.B {
		t.Errorf("toSRGB(128 grey) = %v, want ≈129 grey", got)
	}
	if got := m.RGBAAt(1, 0); absDiff(got.R, 65) > 1 || got.A != 128 {
		t.Errorf("toSRGB(128 grey, alpha 128) = %v, want ≈65 premultiplied, alpha 128", got)
	}
}

func TestParaCurves(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tag     []byte
		x, want float64
	}{
		{"type 0", paraTag(0, 2), 0.5, 0.25},
		{"type 1 below", paraTag(1, 2, 2, -0.5), 0.2, 0},
		{"type 1 above", paraTag(1, 2, 2, -0.5), 0.5, 0.25},
		{"type 2", paraTag(2, 1, 1, 0, 0.25), 0.5, 0.75},
		{"type 3 linear part", srgbCurve, 0.02, 0.02 / 12.92},
		{"type 3 power part", srgbCurve, 0.5, srgbDecode(0.5)},
		{"type 4", paraTag(4, 1, 1, 0, 0.5, 0.5, 0.1, 0.2), 0.25, 0.325},
	} {
		f, ok := parseTRC(tc.tag)
		if !ok {
			t.Fatalf("%s: parseTRC failed", tc.name)
		}
		if got := f(tc.x); math.Abs(got-tc.want) > 1e-3 {
			t.Errorf("%s: curve(%v) = %v, want %v", tc.name, tc.x, got, tc.want)
		}
	}
}
