// jpegenc.go encodes baseline sequential JPEG (JFIF) with 4:4:4 or 4:2:0 chroma.
package main

// The encoder follows ITU T.81: the quantisation tables of Annex K.1 scaled by quality, the
// Huffman tables of Annex K.3, one interleaved baseline scan (F.1.2) and byte stuffing
// (B.1.1.5). The forward DCT is the float AAN factorisation, whose output scale is folded into
// the quantiser. Pixels are converted one MCU row at a time into a strip of level-shifted
// samples, so the working memory is a few rows of the image, not a copy of it.
//
// TODO: Huffman tables optimised per image (a first pass counting symbols, K.2) would save
// some 5-10% of the bytes but need the coefficients kept or computed twice; worth it if
// JPEG bytes start to matter more than encode time.
// TODO: writeJPEG takes no context, so a huge image cannot be cancelled mid-encode; checking
// ctx once per MCU row would be cheap if callers ever encode very large outputs.

import (
	"errors"
	"fmt"
	"image"
	"image/draw"
	"io"
	"math"
	"math/bits"
)

var (
	errJPEGEncodeSize      = errors.New("image size not encodable as jpeg")
	errJPEGEncodeSubsample = errors.New(`jpeg subsampling must be "444" or "420"`)
)

// jpegEncodeMaxSide is the largest width or height a JPEG frame header can carry.
const jpegEncodeMaxSide = 65535

// jpegEncodeOptions configures writeJPEG. The zero value means quality 75 and 4:2:0 chroma.
type jpegEncodeOptions struct {
	// Quality is 1..100 and scales the Annex K tables as the IJG does (5000/q below 50,
	// 200-2q from 50); 0 means 75 and other values outside 1..100 are clamped.
	Quality int
	// Subsample is "444" (full-resolution chroma) or "420" (chroma halved both ways);
	// "" means "420". A gray image is written with one component whatever it says.
	Subsample string
}

// writeJPEG writes img as a baseline JFIF JPEG with an APP0 marker and no other metadata.
// An *image.RGBA is read as it is (a premultiplied pixel counts as composited onto black,
// so callers flatten translucent images first); an *image.Gray becomes a one-component file;
// an *image.YCbCr gives its samples directly, without a trip through RGB; anything else is
// converted to RGBA first. It is safe for concurrent use; w gets the file in chunks of 64 KB
// or so (whole MCU rows, so a very wide image gives larger ones) and a write error ends the
// encoding.
func writeJPEG(w io.Writer, img image.Image, opt jpegEncodeOptions) error {
	b := img.Bounds()
	if b.Dx() < 1 || b.Dy() < 1 || b.Dx() > jpegEncodeMaxSide || b.Dy() > jpegEncodeMaxSide {
		return fmt.Errorf("encode jpeg %dx%d: %w", b.Dx(), b.Dy(), errJPEGEncodeSize)
	}
	var sub420 bool
	switch opt.Subsample {
	case "", "420":
		sub420 = true
	case "444":
	default:
		return fmt.Errorf("encode jpeg subsampling %q: %w", opt.Subsample, errJPEGEncodeSubsample)
	}
	q := opt.Quality
	if q == 0 {
		q = 75
	}
	q = min(max(q, 1), 100)

	e := newJPEGEncoder(w, img, q, sub420)
	return e.encode()
}

// jpegEncoder is the state of one writeJPEG call; it is not shared.
type jpegEncoder struct {
	w          io.Writer
	width      int
	height     int
	comps      int  // 1 (gray) or 3 (Y, Cb, Cr)
	sub420     bool // luma is 2×2 blocks per MCU, each chroma one block
	mcuW, mcuH int  // MCU size in pixels: 8 or 16
	mcusX      int
	mcusY      int
	strip      jpegStrip
	fill       func(y0 int) // converts the MCU row starting at image row y0 into strip
	quant      [2]jpegQuantTable
	pred       [3]int32 // DC predictors per component
	blk        [64]float32
	bw         jpegBitWriter
}

// jpegStrip holds one MCU row of level-shifted samples (value-128) per component at the
// component's own resolution, padded to whole MCUs by repeating the last column and row.
type jpegStrip struct {
	y, cb, cr []float32
	yStride   int // samples per luma row: mcusX × mcuW
	cStride   int // samples per chroma row: mcusX × 8
}

func newJPEGEncoder(w io.Writer, img image.Image, quality int, sub420 bool) *jpegEncoder {
	b := img.Bounds()
	e := &jpegEncoder{w: w, width: b.Dx(), height: b.Dy(), comps: 3, mcuW: 8, mcuH: 8}
	gray, isGray := img.(*image.Gray)
	if isGray {
		e.comps, sub420 = 1, false
	}
	if sub420 {
		e.sub420, e.mcuW, e.mcuH = true, 16, 16
	}
	e.mcusX = ceilDiv(e.width, e.mcuW)
	e.mcusY = ceilDiv(e.height, e.mcuH)
	e.quant[0] = newJPEGQuantTable(&jpegLumaQuant, quality)
	e.quant[1] = newJPEGQuantTable(&jpegChromaQuant, quality)
	// Room for a typical photo at high quality (about 2 bits a pixel), up to one flush.
	e.bw.out = make([]byte, 0, min(e.width*e.height/4, jpegFlushSize)+4096)

	s := &e.strip
	s.yStride = e.mcusX * e.mcuW
	s.y = make([]float32, s.yStride*e.mcuH)
	if e.comps == 3 {
		s.cStride = e.mcusX * 8
		s.cb = make([]float32, s.cStride*8)
		s.cr = make([]float32, s.cStride*8)
	}
	e.fill = e.filler(img, gray)
	return e
}

// filler picks the strip conversion for img's type.
func (e *jpegEncoder) filler(img image.Image, gray *image.Gray) func(int) {
	if gray != nil {
		return func(y0 int) { e.fillGray(gray, y0) }
	}
	if yc, ok := img.(*image.YCbCr); ok {
		return e.ycbcrFiller(yc)
	}
	rgba, ok := img.(*image.RGBA)
	if !ok {
		b := img.Bounds()
		rgba = image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
		draw.Draw(rgba, rgba.Rect, img, b.Min, draw.Src)
	}
	if e.sub420 {
		return func(y0 int) { e.fillRGBA420(rgba, y0) }
	}
	return func(y0 int) { e.fillRGBA444(rgba, y0) }
}

// ycbcrFiller copies img's planes when its chroma grid is the output's, and otherwise
// resamples its chroma per pixel (still without a trip through RGB).
func (e *jpegEncoder) ycbcrFiller(img *image.YCbCr) func(int) {
	o := img.Rect.Min
	switch {
	case !e.sub420 && img.SubsampleRatio == image.YCbCrSubsampleRatio444:
		return func(y0 int) { e.fillYCbCrDirect(img, y0, 1) }
	case e.sub420 && img.SubsampleRatio == image.YCbCrSubsampleRatio420 &&
		o.X%2 == 0 && o.Y%2 == 0:
		return func(y0 int) { e.fillYCbCrDirect(img, y0, 2) }
	}
	return func(y0 int) { e.fillYCbCrGeneric(img, y0) }
}

// encode writes the headers, the scan and EOI, then hands the rest of the bytes to e.w.
func (e *jpegEncoder) encode() error {
	e.writeHeaders()
	for my := 0; my < e.mcusY; my++ {
		e.fill(my * e.mcuH)
		for mx := 0; mx < e.mcusX; mx++ {
			e.mcu(mx)
		}
		if len(e.bw.out) >= jpegFlushSize {
			if err := e.flush(); err != nil {
				return err
			}
		}
	}
	e.bw.finish()
	e.bw.out = append(e.bw.out, 0xff, jpegEOI)
	return e.flush()
}

// jpegFlushSize is how many output bytes collect before encode hands them to the writer.
const jpegFlushSize = 64 << 10

func (e *jpegEncoder) flush() error {
	if _, err := e.w.Write(e.bw.out); err != nil {
		return fmt.Errorf("write jpeg: %w", err)
	}
	e.bw.out = e.bw.out[:0]
	return nil
}

// mcu encodes the mx-th MCU of the strip: its luma blocks in raster order, then Cb and Cr.
func (e *jpegEncoder) mcu(mx int) {
	s := &e.strip
	x := mx * e.mcuW
	e.block(s.y[x:], s.yStride, 0)
	if e.sub420 {
		e.block(s.y[x+8:], s.yStride, 0)
		e.block(s.y[8*s.yStride+x:], s.yStride, 0)
		e.block(s.y[8*s.yStride+x+8:], s.yStride, 0)
	}
	if e.comps == 3 {
		e.block(s.cb[mx*8:], s.cStride, 1)
		e.block(s.cr[mx*8:], s.cStride, 2)
	}
}

// block transforms, quantises and Huffman-codes the 8×8 samples at the start of src
// (rows stride apart) as component c.
func (e *jpegEncoder) block(src []float32, stride, c int) {
	for r := 0; r < 8; r++ {
		copy(e.blk[r*8:r*8+8], src[r*stride:r*stride+8])
	}
	jpegFDCT(&e.blk)

	tbl := min(c, 1)
	q := &e.quant[tbl]
	var zz [64]int32
	var nonzero uint64
	for k := 1; k < 64; k++ {
		// Adding 2^14 before truncating rounds to nearest for |v| < 2^14.
		v := int32(e.blk[jpegEncZigzag[k]]*q.scale[k]+16384.5) - 16384
		zz[k] = v
		// Branch-free: (v | -v) has its sign bit set exactly when v != 0.
		nonzero |= uint64(int64(v)|-int64(v)) >> 63 << k
	}
	dc := int32(e.blk[0]*q.scale[0]+16384.5) - 16384
	dc = min(max(dc, -1024), 1023)

	diff := dc - e.pred[c]
	e.pred[c] = dc
	s, extra := jpegCategory(diff)
	code := jpegDCCodes[tbl][s]
	e.bw.put(code>>8<<s|extra, uint(code&0xff)+s)
	e.acCodes(&zz, nonzero, &jpegACCodes[tbl])
}

// acCodes writes the run-length and Huffman codes of the AC coefficients zz[1:], whose
// nonzero positions are the set bits of nonzero (F.1.2.2).
func (e *jpegEncoder) acCodes(zz *[64]int32, nonzero uint64, ac *jpegHuffCodes) {
	last := 0
	for nonzero != 0 {
		k := bits.TrailingZeros64(nonzero)
		nonzero &= nonzero - 1
		run := k - last - 1
		for ; run >= 16; run -= 16 {
			zrl := ac[0xf0]
			e.bw.put(zrl>>8, uint(zrl&0xff))
		}
		v := zz[k]
		s, extra := jpegCategory(v)
		if s > 10 {
			// Only a quantiser of 1 on an extreme block gets here; baseline AC stops at 10 bits.
			s, extra = jpegCategory(min(max(v, -1023), 1023))
		}
		code := ac[run<<4|int(s)]
		e.bw.put(code>>8<<s|extra, uint(code&0xff)+s)
		last = k
	}
	if last != 63 {
		eob := ac[0x00]
		e.bw.put(eob>>8, uint(eob&0xff))
	}
}

// jpegCategory returns the magnitude category of v (its bit length, T.81 table F.1/F.2) and
// the extra bits that follow its code: v itself when positive, v-1 in s bits when negative.
func jpegCategory(v int32) (s uint, extra uint32) {
	neg := v >> 31
	s = uint(bits.Len32(uint32((v ^ neg) - neg)))
	return s, uint32(v+neg) & (1<<s - 1)
}

// jpegRGB2YCbCr converts one pixel to level-shifted Y, Cb, Cr (JFIF 1.02, section 7). The
// +128 of the chroma formulas and the -128 of the level shift cancel.
func jpegRGB2YCbCr(r, g, b float32) (y, cb, cr float32) {
	y = 0.299*r + 0.587*g + 0.114*b - 128
	cb = -0.168735892*r - 0.331264108*g + 0.5*b
	cr = 0.5*r - 0.418687589*g - 0.081312411*b
	return y, cb, cr
}

// fillRGBA444 converts the 8 image rows from y0 into the strip at full resolution.
func (e *jpegEncoder) fillRGBA444(img *image.RGBA, y0 int) {
	s := &e.strip
	for j := 0; j < 8; j++ {
		sy := min(y0+j, e.height-1)
		row := img.Pix[img.PixOffset(img.Rect.Min.X, img.Rect.Min.Y+sy):]
		row = row[: 4*e.width : 4*e.width]
		ys := s.y[j*s.yStride : (j+1)*s.yStride]
		cbs := s.cb[j*s.cStride : (j+1)*s.cStride]
		crs := s.cr[j*s.cStride : (j+1)*s.cStride]
		for x := 0; x < e.width; x++ {
			p := row[4*x : 4*x+3 : 4*x+3]
			ys[x], cbs[x], crs[x] = jpegRGB2YCbCr(float32(p[0]), float32(p[1]), float32(p[2]))
		}
		jpegRepeatTail(ys, e.width)
		jpegRepeatTail(cbs, e.width)
		jpegRepeatTail(crs, e.width)
	}
}

// fillRGBA420 converts the 16 image rows from y0 into the strip: luma per pixel, chroma
// from the average colour of each 2×2 cell (a cell past the edge repeats the last pixel).
func (e *jpegEncoder) fillRGBA420(img *image.RGBA, y0 int) {
	s := &e.strip
	w := e.width
	for j := 0; j < 8; j++ {
		sy0 := min(y0+2*j, e.height-1)
		sy1 := min(y0+2*j+1, e.height-1)
		r0 := img.Pix[img.PixOffset(img.Rect.Min.X, img.Rect.Min.Y+sy0):][: 4*w : 4*w]
		r1 := img.Pix[img.PixOffset(img.Rect.Min.X, img.Rect.Min.Y+sy1):][: 4*w : 4*w]
		y0s := s.y[2*j*s.yStride : (2*j+1)*s.yStride]
		y1s := s.y[(2*j+1)*s.yStride : (2*j+2)*s.yStride]
		cbs := s.cb[j*s.cStride : (j+1)*s.cStride]
		crs := s.cr[j*s.cStride : (j+1)*s.cStride]
		for x := 0; x < w; x += 2 {
			x1 := min(x+1, w-1)
			a, b := r0[4*x:4*x+3:4*x+3], r0[4*x1:4*x1+3:4*x1+3]
			c, d := r1[4*x:4*x+3:4*x+3], r1[4*x1:4*x1+3:4*x1+3]
			y0s[x] = jpegLuma(a)
			y0s[x+1] = jpegLuma(b)
			y1s[x] = jpegLuma(c)
			y1s[x+1] = jpegLuma(d)
			rs := float32(int(a[0])+int(b[0])+int(c[0])+int(d[0])) * 0.25
			gs := float32(int(a[1])+int(b[1])+int(c[1])+int(d[1])) * 0.25
			bs := float32(int(a[2])+int(b[2])+int(c[2])+int(d[2])) * 0.25
			_, cbs[x/2], crs[x/2] = jpegRGB2YCbCr(rs, gs, bs)
		}
		jpegRepeatTail(y0s, w)
		jpegRepeatTail(y1s, w)
		jpegRepeatTail(cbs, ceilDiv(w, 2))
		jpegRepeatTail(crs, ceilDiv(w, 2))
	}
}

// jpegLuma is the level-shifted luma of the RGB pixel p.
func jpegLuma(p []uint8) float32 {
	return 0.299*float32(p[0]) + 0.587*float32(p[1]) + 0.114*float32(p[2]) - 128
}

// fillGray copies the 8 image rows from y0 into the luma strip.
func (e *jpegEncoder) fillGray(img *image.Gray, y0 int) {
	s := &e.strip
	for j := 0; j < 8; j++ {
		sy := min(y0+j, e.height-1)
		row := img.Pix[img.PixOffset(img.Rect.Min.X, img.Rect.Min.Y+sy):][:e.width]
		jpegLevelShift(s.y[j*s.yStride:(j+1)*s.yStride], row)
	}
}

// fillYCbCrDirect copies img's planes into the strip; f is the chroma subsampling factor
// (1 or 2), the same for the output as for img.
func (e *jpegEncoder) fillYCbCrDirect(img *image.YCbCr, y0, f int) {
	s := &e.strip
	for j := 0; j < e.mcuH; j++ {
		sy := img.Rect.Min.Y + min(y0+j, e.height-1)
		row := img.Y[img.YOffset(img.Rect.Min.X, sy):][:e.width]
		jpegLevelShift(s.y[j*s.yStride:(j+1)*s.yStride], row)
	}
	cw := ceilDiv(e.width, f)
	for j := 0; j < 8; j++ {
		sy := img.Rect.Min.Y + min(y0+j*f, e.height-1)
		off := img.COffset(img.Rect.Min.X, sy)
		jpegLevelShift(s.cb[j*s.cStride:(j+1)*s.cStride], img.Cb[off:off+cw])
		jpegLevelShift(s.cr[j*s.cStride:(j+1)*s.cStride], img.Cr[off:off+cw])
	}
}

// fillYCbCrGeneric fills the strip from a YCbCr image whose chroma grid differs from the
// output's: each output chroma sample averages the source chroma of the pixels it covers.
func (e *jpegEncoder) fillYCbCrGeneric(img *image.YCbCr, y0 int) {
	s := &e.strip
	for j := 0; j < e.mcuH; j++ {
		sy := img.Rect.Min.Y + min(y0+j, e.height-1)
		row := img.Y[img.YOffset(img.Rect.Min.X, sy):][:e.width]
		jpegLevelShift(s.y[j*s.yStride:(j+1)*s.yStride], row)
	}
	f := e.mcuW / 8
	cw := ceilDiv(e.width, f)
	for j := 0; j < 8; j++ {
		cbs := s.cb[j*s.cStride : (j+1)*s.cStride]
		crs := s.cr[j*s.cStride : (j+1)*s.cStride]
		for cx := 0; cx < cw; cx++ {
			var cb, cr int
			for k := 0; k < f*f; k++ {
				x := img.Rect.Min.X + min(cx*f+k%f, e.width-1)
				y := img.Rect.Min.Y + min(y0+j*f+k/f, e.height-1)
				off := img.COffset(x, y)
				cb += int(img.Cb[off])
				cr += int(img.Cr[off])
			}
			n := float32(f * f)
			cbs[cx] = float32(cb)/n - 128
			crs[cx] = float32(cr)/n - 128
		}
		jpegRepeatTail(cbs, cw)
		jpegRepeatTail(crs, cw)
	}
}

// jpegLevelShift stores src-128 at the start of dst and repeats the last sample to its end.
func jpegLevelShift(dst []float32, src []uint8) {
	dst = dst[:len(dst):len(dst)]
	for i, v := range src {
		dst[i] = float32(v) - 128
	}
	jpegRepeatTail(dst, len(src))
}

// jpegRepeatTail copies row[n-1] into row[n:].
func jpegRepeatTail(row []float32, n int) {
	v := row[n-1]
	for i := n; i < len(row); i++ {
		row[i] = v
	}
}

// jpegFDCT transforms the level-shifted samples blk (row-major) in place into DCT
// coefficients, each scaled by 8·aan(u)·aan(v) with aan(0)=1, aan(k)=√2·cos(kπ/16): the AAN
// factorisation (Arai, Agui and Nakajima), 5 multiplications per 8 samples, whose leftover
// scale newJPEGQuantTable folds into the quantiser. The row and column passes are written out
// twice because they are the encoder's hot loop.
func jpegFDCT(blk *[64]float32) {
	const (
		c4   = 0.707106781 // cos(4π/16)
		c6s  = 0.382683433 // cos(6π/16)
		c2c6 = 0.541196100 // cos(2π/16) - cos(6π/16)
		c2p6 = 1.306562965 // cos(2π/16) + cos(6π/16)
	)
	for i := 0; i < 64; i += 8 {
		p := (*[8]float32)(blk[i : i+8])
		s07, d07 := p[0]+p[7], p[0]-p[7]
		s16, d16 := p[1]+p[6], p[1]-p[6]
		s25, d25 := p[2]+p[5], p[2]-p[5]
		s34, d34 := p[3]+p[4], p[3]-p[4]

		e0, e3 := s07+s34, s07-s34
		e1, e2 := s16+s25, s16-s25
		p[0], p[4] = e0+e1, e0-e1
		z1 := (e2 + e3) * c4
		p[2], p[6] = e3+z1, e3-z1

		o0, o1, o2 := d34+d25, d25+d16, d16+d07
		z5 := (o0 - o2) * c6s
		z2 := c2c6*o0 + z5
		z4 := c2p6*o2 + z5
		z3 := o1 * c4
		z11, z13 := d07+z3, d07-z3
		p[5], p[3] = z13+z2, z13-z2
		p[1], p[7] = z11+z4, z11-z4
	}
	for i := 0; i < 8; i++ {
		p := (*[57]float32)(blk[i : i+57])
		s07, d07 := p[0]+p[56], p[0]-p[56]
		s16, d16 := p[8]+p[48], p[8]-p[48]
		s25, d25 := p[16]+p[40], p[16]-p[40]
		s34, d34 := p[24]+p[32], p[24]-p[32]

		e0, e3 := s07+s34, s07-s34
		e1, e2 := s16+s25, s16-s25
		p[0], p[32] = e0+e1, e0-e1
		z1 := (e2 + e3) * c4
		p[16], p[48] = e3+z1, e3-z1

		o0, o1, o2 := d34+d25, d25+d16, d16+d07
		z5 := (o0 - o2) * c6s
		z2 := c2c6*o0 + z5
		z4 := c2p6*o2 + z5
		z3 := o1 * c4
		z11, z13 := d07+z3, d07-z3
		p[40], p[24] = z13+z2, z13-z2
		p[8], p[56] = z11+z4, z11-z4
	}
}

// jpegQuantTable is one quantisation table: its values in coding (zigzag) order as DQT
// carries them, and per coding position the factor that turns jpegFDCT's output into the
// quantised coefficient.
type jpegQuantTable struct {
	zz    [64]uint8
	scale [64]float32
}

// newJPEGQuantTable scales base (natural order) to quality 1..100 the IJG way, each value
// clamped to 1..255 for 8-bit tables.
func newJPEGQuantTable(base *[64]uint8, quality int) jpegQuantTable {
	f := 200 - 2*quality
	if quality < 50 {
		f = 5000 / quality
	}
	var t jpegQuantTable
	for k, n := range jpegEncZigzag {
		v := min(max((int(base[n])*f+50)/100, 1), 255)
		t.zz[k] = uint8(v)
		t.scale[k] = float32(1 / (float64(v) * 8 * jpegAAN(int(n)/8) * jpegAAN(int(n)%8)))
	}
	return t
}

// jpegAAN is the AAN output scale of frequency k: 1 for k=0, else √2·cos(kπ/16).
func jpegAAN(k int) float64 {
	if k == 0 {
		return 1
	}
	return math.Sqrt2 * math.Cos(float64(k)*math.Pi/16)
}

// jpegLumaQuant and jpegChromaQuant are T.81 tables K.1 and K.2, in natural order.
var (
	jpegLumaQuant = [64]uint8{
		16, 11, 10, 16, 24, 40, 51, 61,
		12, 12, 14, 19, 26, 58, 60, 55,
		14, 13, 16, 24, 40, 57, 69, 56,
		14, 17, 22, 29, 51, 87, 80, 62,
		18, 22, 37, 56, 68, 109, 103, 77,
		24, 35, 55, 64, 81, 104, 113, 92,
		49, 64, 78, 87, 103, 121, 120, 101,
		72, 92, 95, 98, 112, 100, 103, 99,
	}
	jpegChromaQuant = [64]uint8{
		17, 18, 24, 47, 99, 99, 99, 99,
		18, 21, 26, 66, 99, 99, 99, 99,
		24, 26, 56, 99, 99, 99, 99, 99,
		47, 66, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
		99, 99, 99, 99, 99, 99, 99, 99,
	}
)

// jpegEncZigzag maps coding order to natural (row-major) position: the anti-diagonals of
// the block, walked alternately up and to the right, then down and to the left (T.81
// figure 5).
var jpegEncZigzag = func() (z [64]uint8) {
	k := 0
	for d := 0; d < 15; d++ {
		lo, hi := max(0, d-7), min(d, 7)
		for i := lo; i <= hi; i++ {
			r := i
			if d%2 == 0 {
				r = hi + lo - i
			}
			z[k] = uint8(r*8 + d - r)
			k++
		}
	}
	return z
}()

// jpegHuffSpec is a Huffman table as DHT carries it: how many codes have each length 1..16,
// and the symbols in code order.
type jpegHuffSpec struct {
	counts  [16]uint8
	symbols []uint8
}

// jpegHuffCodes gives per symbol its code shifted left by 8 with the code length in the low
// 8 bits; 0 for a symbol the table lacks.
type jpegHuffCodes [256]uint32

// jpegDCSymbols are the DC categories 0..11 in code order, the same in both DC tables.
var jpegDCSymbols = []uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}

// The Huffman tables of T.81 K.3: DC and AC, luminance (index 0) and chrominance (1). Each AC
// table lists its most frequent symbols explicitly; all its codes of length 16 are the
// remaining symbols in increasing order, which jpegACSymbols appends.
var (
	jpegDCSpecs = [2]jpegHuffSpec{
		{[16]uint8{0, 1, 5, 1, 1, 1, 1, 1, 1}, jpegDCSymbols},
		{[16]uint8{0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1}, jpegDCSymbols},
	}
	jpegACSpecs = [2]jpegHuffSpec{
		{[16]uint8{0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 125}, jpegACSymbols(
			0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13,
			0x51, 0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42,
			0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82)},
		{[16]uint8{0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 119}, jpegACSymbols(
			0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51,
			0x07, 0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1,
			0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24,
			0x34, 0xe1, 0x25, 0xf1)},
	}
	jpegDCCodes = [2]jpegHuffCodes{jpegDCSpecs[0].codes(), jpegDCSpecs[1].codes()}
	jpegACCodes = [2]jpegHuffCodes{jpegACSpecs[0].codes(), jpegACSpecs[1].codes()}
)

// jpegACSymbols returns first followed by every other baseline AC symbol (EOB, ZRL, and run
// 0..15 with size 1..10) in increasing order.
func jpegACSymbols(first ...uint8) []uint8 {
	var seen [256]bool
	for _, s := range first {
		seen[s] = true
	}
	out := append([]uint8(nil), first...)
	for s := 0; s < 256; s++ {
		size := s & 15
		if !seen[s] && (s == 0x00 || s == 0xf0 || size >= 1 && size <= 10) {
			out = append(out, uint8(s))
		}
	}
	return out
}

// codes assigns the canonical codes of T.81 C.2: consecutive values within a length, the
// next length starting from the following value shifted left.
func (h *jpegHuffSpec) codes() jpegHuffCodes {
	var c jpegHuffCodes
	code, k := uint32(0), 0
	for l := 1; l <= 16; l++ {
		for i := 0; i < int(h.counts[l-1]); i++ {
			c[h.symbols[k]] = code<<8 | uint32(l)
			code++
			k++
		}
		code <<= 1
	}
	return c
}

// Markers written (T.81 table B.1).
const (
	jpegSOI  = 0xd8
	jpegEOI  = 0xd9
	jpegAPP0 = 0xe0
	jpegDQT  = 0xdb
	jpegSOF0 = 0xc0
	jpegDHT  = 0xc4
	jpegSOS  = 0xda
)

// writeHeaders appends SOI, the JFIF APP0, DQT, SOF0, DHT and SOS to the output.
func (e *jpegEncoder) writeHeaders() {
	out := append(e.bw.out, 0xff, jpegSOI)
	// JFIF 1.01, no units, 1:1 pixel aspect, no thumbnail.
	out = jpegSegment(out, jpegAPP0, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0)

	tables := min(e.comps, 2)
	dqt := make([]byte, 0, 65*tables)
	for t := 0; t < tables; t++ {
		dqt = append(append(dqt, byte(t)), e.quant[t].zz[:]...)
	}
	out = jpegSegment(out, jpegDQT, dqt...)

	h, v := byte(1), byte(1)
	if e.sub420 {
		h, v = 2, 2
	}
	sof := []byte{8, byte(e.height >> 8), byte(e.height), byte(e.width >> 8), byte(e.width),
		byte(e.comps), 1, h<<4 | v, 0}
	sos := []byte{byte(e.comps), 1, 0x00}
	for c := 2; c <= e.comps; c++ {
		sof = append(sof, byte(c), 0x11, 1)
		sos = append(sos, byte(c), 0x11)
	}
	out = jpegSegment(out, jpegSOF0, sof...)

	var dht []byte
	for t := 0; t < tables; t++ {
		dht = jpegAppendHuff(dht, 0x00|byte(t), &jpegDCSpecs[t])
		dht = jpegAppendHuff(dht, 0x10|byte(t), &jpegACSpecs[t])
	}
	out = jpegSegment(out, jpegDHT, dht...)
	e.bw.out = jpegSegment(out, jpegSOS, append(sos, 0, 63, 0)...)
}

// jpegSegment appends a marker segment: marker, length, payload.
func jpegSegment(out []byte, marker byte, payload ...byte) []byte {
	n := len(payload) + 2
	out = append(out, 0xff, marker, byte(n>>8), byte(n))
	return append(out, payload...)
}

// jpegAppendHuff appends one DHT table: class and id, the 16 counts, the symbols.
func jpegAppendHuff(dst []byte, classID byte, h *jpegHuffSpec) []byte {
	dst = append(dst, classID)
	dst = append(dst, h.counts[:]...)
	return append(dst, h.symbols...)
}

// jpegBitWriter packs entropy-coded bits most significant first into out, stuffing a zero
// byte after each 0xFF (T.81 B.1.1.5). The low n bits of acc are pending; the rest is stale.
type jpegBitWriter struct {
	acc uint64
	n   uint
	out []byte
}

// put appends the low size bits of v; size is at most 32 (the longest put is a 16-bit code
// with 11 extra bits, and n stays under 32 between calls).
func (bw *jpegBitWriter) put(v uint32, size uint) {
	bw.acc = bw.acc<<size | uint64(v)
	bw.n += size
	if bw.n >= 32 {
		bw.emit32()
	}
}

// emit32 moves the oldest 32 pending bits to out.
func (bw *jpegBitWriter) emit32() {
	bw.n -= 32
	v := uint32(bw.acc >> bw.n)
	// The usual test for a zero byte, applied to ^v: does any byte of v equal 0xFF?
	if (^v-0x01010101)&v&0x80808080 == 0 {
		bw.out = append(bw.out, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
		return
	}
	for sh := 24; sh >= 0; sh -= 8 {
		bw.byte(byte(v >> sh))
	}
}

func (bw *jpegBitWriter) byte(b byte) {
	bw.out = append(bw.out, b)
	if b == 0xff {
		bw.out = append(bw.out, 0)
	}
}

// finish pads the last byte with 1 bits (T.81 F.1.2.3) and moves all pending bits to out.
func (bw *jpegBitWriter) finish() {
	if r := bw.n % 8; r != 0 {
		bw.acc = bw.acc<<(8-r) | (1<<(8-r) - 1)
		bw.n += 8 - r
	}
	for bw.n >= 8 {
		bw.n -= 8
		bw.byte(byte(bw.acc >> bw.n))
	}
}
