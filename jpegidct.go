// jpegidct.go holds the integer inverse DCTs of jpegdec.go: 8×8 and the reduced sizes below it.
package main

// The 8-point transform below factors the even and odd halves of the 1-D inverse DCT the way
// Loeffler, Ligtenberg and Moschytz describe (12 multiplications per 8 points). Constants are
// the cosine factors scaled by 2^idctBits and rounded. Each 1-D pass computes
// F0 + sqrt(2) Σ F(u) cos((2i+1)uπ/16), which is sqrt(8) times the orthonormal transform, so
// the two passes together are 8 times the JPEG inverse DCT and the last pass divides by 8.
//
// The reduced transforms rely on one identity: sampling the continuous 8-point reconstruction
// at the centre of each k×k group of pixels (k = 8/N) gives cos(k(2i+1)uπ/16) =
// cos((2i+1)uπ/2N), an N-point inverse DCT of the N lowest frequencies with the same scale.
// That is the block's image shrunk by k, without computing the full 8×8 first.
const (
	idctBits  = 13 // fixed-point precision of the constants
	idctPass1 = 2  // extra bits kept between the column and the row pass

	fix0298 = 2446  // 0.298631336
	fix0390 = 3196  // 0.390180644
	fix0541 = 4433  // 0.541196100
	fix0765 = 6270  // 0.765366865
	fix0899 = 7373  // 0.899976223
	fix1175 = 9633  // 1.175875602
	fix1306 = 10703 // 1.306562965
	fix1501 = 12299 // 1.501321110
	fix1847 = 15137 // 1.847759065
	fix1961 = 16069 // 1.961570560
	fix2053 = 16819 // 2.053119869
	fix2562 = 20995 // 2.562915447
	fix3072 = 25172 // 3.072711026
)

// clampSample turns a level-shifted sample into a byte, saturating at 0 and 255.
func clampSample(x int32) byte {
	if uint32(x) > 255 {
		if x < 0 {
			return 0
		}
		return 255
	}
	return byte(x)
}

// idct8 writes the 8×8 inverse DCT of the dequantized coefficients blk (natural order) to dst,
// rows stride bytes apart, level-shifted by 128. Columns go first, into a workspace that
// keeps idctPass1 extra bits; a column or row whose AC terms are all zero is a plain copy.
// The 8-point transform is written out in both passes so that nothing is a call.
func idct8(blk *[64]int32, dst []byte, stride int) {
	var ws [64]int32
	for c := 0; c < 8; c++ {
		col := blk[c : c+57 : c+57]
		if col[8]|col[16]|col[24]|col[32]|col[40]|col[48]|col[56] == 0 {
			v := col[0] << idctPass1
			ws[c], ws[8+c], ws[16+c], ws[24+c] = v, v, v, v
			ws[32+c], ws[40+c], ws[48+c], ws[56+c] = v, v, v, v
			continue
		}
		// Even half: frequencies 0, 2, 4, 6.
		z1 := (col[16] + col[48]) * fix0541
		e2 := z1 - col[48]*fix1847
		e3 := z1 + col[16]*fix0765
		e0 := (col[0] + col[32]) << idctBits
		e1 := (col[0] - col[32]) << idctBits
		a0, a3 := e0+e3, e0-e3
		a1, a2 := e1+e2, e1-e2

		// Odd half: frequencies 1, 3, 5, 7.
		s1, s2, s3, s4 := col[56]+col[8], col[40]+col[24], col[56]+col[24], col[40]+col[8]
		z5 := (s3 + s4) * fix1175
		s1 *= -fix0899
		s2 *= -fix2562
		s3 = s3*-fix1961 + z5
		s4 = s4*-fix0390 + z5
		o0 := col[56]*fix0298 + s1 + s3
		o1 := col[40]*fix2053 + s2 + s4
		o2 := col[24]*fix3072 + s2 + s3
		o3 := col[8]*fix1501 + s1 + s4

		const sh = idctBits - idctPass1
		const rnd = 1 << (sh - 1)
		ws[c], ws[56+c] = (a0+o3+rnd)>>sh, (a0-o3+rnd)>>sh
		ws[8+c], ws[48+c] = (a1+o2+rnd)>>sh, (a1-o2+rnd)>>sh
		ws[16+c], ws[40+c] = (a2+o1+rnd)>>sh, (a2-o1+rnd)>>sh
		ws[24+c], ws[32+c] = (a3+o0+rnd)>>sh, (a3-o0+rnd)>>sh
	}

	_ = dst[7*stride+7]
	for r := 0; r < 8; r++ {
		in := (*[8]int32)(ws[r*8 : r*8+8])
		d := dst[r*stride : r*stride+8 : r*stride+8]
		if in[1]|in[2]|in[3]|in[4]|in[5]|in[6]|in[7] == 0 {
			v := clampSample((in[0] + (1<<(idctPass1+2) + 128<<(idctPass1+3))) >> (idctPass1 + 3))
			d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7] = v, v, v, v, v, v, v, v
			continue
		}
		// Even half: frequencies 0, 2, 4, 6.
		z1 := (in[2] + in[6]) * fix0541
		e2 := z1 - in[6]*fix1847
		e3 := z1 + in[2]*fix0765
		e0 := (in[0] + in[4]) << idctBits
		e1 := (in[0] - in[4]) << idctBits
		a0, a3 := e0+e3, e0-e3
		a1, a2 := e1+e2, e1-e2

		// Odd half: frequencies 1, 3, 5, 7.
		s1, s2, s3, s4 := in[7]+in[1], in[5]+in[3], in[7]+in[3], in[5]+in[1]
		z5 := (s3 + s4) * fix1175
		s1 *= -fix0899
		s2 *= -fix2562
		s3 = s3*-fix1961 + z5
		s4 = s4*-fix0390 + z5
		o0 := in[7]*fix0298 + s1 + s3
		o1 := in[5]*fix2053 + s2 + s4
		o2 := in[3]*fix3072 + s2 + s3
		o3 := in[1]*fix1501 + s1 + s4

		const sh = idctBits + idctPass1 + 3
		const rnd = 1<<(sh-1) + 128<<sh
		d[0], d[7] = clampSample((a0+o3+rnd)>>sh), clampSample((a0-o3+rnd)>>sh)
		d[1], d[6] = clampSample((a1+o2+rnd)>>sh), clampSample((a1-o2+rnd)>>sh)
		d[2], d[5] = clampSample((a2+o1+rnd)>>sh), clampSample((a2-o1+rnd)>>sh)
		d[3], d[4] = clampSample((a3+o0+rnd)>>sh), clampSample((a3-o0+rnd)>>sh)
	}
}

// idct4 writes the 4×4 reduced inverse DCT of the 16 lowest coefficients of blk to dst.
func idct4(blk *[64]int32, dst []byte, stride int) {
	var ws [16]int32
	const sh1 = idctBits - idctPass1
	for c := 0; c < 4; c++ {
		var out [4]int32
		idct4Core(blk[c], blk[8+c], blk[16+c], blk[24+c], &out)
		for r := 0; r < 4; r++ {
			ws[r*4+c] = (out[r] + 1<<(sh1-1)) >> sh1
		}
	}

	const sh2 = idctBits + idctPass1 + 3
	const rnd = 1<<(sh2-1) + 128<<sh2
	_ = dst[3*stride+3]
	for r := 0; r < 4; r++ {
		var out [4]int32
		idct4Core(ws[r*4], ws[r*4+1], ws[r*4+2], ws[r*4+3], &out)
		d := dst[r*stride : r*stride+4 : r*stride+4]
		for i := range d {
			d[i] = clampSample((out[i] + rnd) >> sh2)
		}
	}
}

// idct4Core is one 4-point reduced transform; the outputs carry idctBits fraction bits.
func idct4Core(in0, in1, in2, in3 int32, out *[4]int32) {
	e0 := (in0 + in2) << idctBits
	e1 := (in0 - in2) << idctBits
	o0 := in1*fix1306 + in3*fix0541
	o1 := in1*fix0541 - in3*fix1306
	out[0], out[3] = e0+o0, e0-o0
	out[1], out[2] = e1+o1, e1-o1
}

// idct2 writes the 2×2 reduced inverse DCT of the 4 lowest coefficients of blk to dst.
func idct2(blk *[64]int32, dst []byte, stride int) {
	a, b, c, d := blk[0], blk[1], blk[8], blk[9]
	const rnd = 4 + 128<<3
	_ = dst[stride+1]
	dst[0] = clampSample((a + b + c + d + rnd) >> 3)
	dst[1] = clampSample((a - b + c - d + rnd) >> 3)
	dst[stride] = clampSample((a + b - c - d + rnd) >> 3)
	dst[stride+1] = clampSample((a - b - c + d + rnd) >> 3)
}

// idctRect writes the w×h reduced inverse DCT (w, h in 8, 4, 2, 1) of the lowest h×w
// coefficients of blk to dst: the block of a component reduced differently across and down.
func idctRect(blk *[64]int32, dst []byte, stride, w, h int) {
	var ws [64]int32
	const sh1 = idctBits - idctPass1
	for c := 0; c < w; c++ {
		var in, out [8]int32
		for r := 0; r < h; r++ {
			in[r] = blk[r*8+c]
		}
		idct1D(h, &in, &out)
		for r := 0; r < h; r++ {
			ws[r*8+c] = (out[r] + 1<<(sh1-1)) >> sh1
		}
	}

	const sh2 = idctBits + idctPass1 + 3
	const rnd = 1<<(sh2-1) + 128<<sh2
	for r := 0; r < h; r++ {
		var in, out [8]int32
		copy(in[:w], ws[r*8:r*8+w])
		idct1D(w, &in, &out)
		d := dst[r*stride : r*stride+w]
		for i := range d {
			d[i] = clampSample((out[i] + rnd) >> sh2)
		}
	}
}

// idct1D is the n-point transform (n in 8, 4, 2, 1) of the n lowest coefficients in in; the
// outputs carry idctBits fraction bits, at the scale of the 8-point pass of idct8.
func idct1D(n int, in, out *[8]int32) {
	switch n {
	case 1:
		out[0] = in[0] << idctBits
	case 2:
		out[0], out[1] = (in[0]+in[1])<<idctBits, (in[0]-in[1])<<idctBits
	case 4:
		var o [4]int32
		idct4Core(in[0], in[1], in[2], in[3], &o)
		copy(out[:4], o[:])
	default:
		// Even half: frequencies 0, 2, 4, 6.
		z1 := (in[2] + in[6]) * fix0541
		e2 := z1 - in[6]*fix1847
		e3 := z1 + in[2]*fix0765
		e0 := (in[0] + in[4]) << idctBits
		e1 := (in[0] - in[4]) << idctBits
		a0, a3 := e0+e3, e0-e3
		a1, a2 := e1+e2, e1-e2

		// Odd half: frequencies 1, 3, 5, 7.
		s1, s2, s3, s4 := in[7]+in[1], in[5]+in[3], in[7]+in[3], in[5]+in[1]
		z5 := (s3 + s4) * fix1175
		s1 *= -fix0899
		s2 *= -fix2562
		s3 = s3*-fix1961 + z5
		s4 = s4*-fix0390 + z5
		o0 := in[7]*fix0298 + s1 + s3
		o1 := in[5]*fix2053 + s2 + s4
		o2 := in[3]*fix3072 + s2 + s3
		o3 := in[1]*fix1501 + s1 + s4

		out[0], out[7] = a0+o3, a0-o3
		out[1], out[6] = a1+o2, a1-o2
		out[2], out[5] = a2+o1, a2-o1
		out[3], out[4] = a3+o0, a3-o0
	}
}

// dcSample is the level-shifted value of a block whose only coefficient is the DC dc.
func dcSample(dc int32) byte {
	return clampSample((dc + 4 + 128<<3) >> 3)
}

// fillBlock sets a w×h block of dst to v.
func fillBlock(dst []byte, stride, w, h int, v byte) {
	for r := 0; r < h; r++ {
		d := dst[r*stride : r*stride+w]
		for i := range d {
			d[i] = v
		}
	}
}
