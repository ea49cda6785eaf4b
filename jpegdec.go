// jpegdec.go decodes baseline and progressive JPEG files at 1/1, 1/2, 1/4 or 1/8 of their size.
package main

// The decoder follows ITU T.81: markers (B.2), Huffman tables (C, F.2.2.3), baseline
// sequential scans (F.2) and progressive scans (G.1.2). Arithmetic coding, lossless,
// hierarchical and 12-bit files are refused with errJPEGFormat. A scaled decode runs a reduced
// inverse DCT per block (jpegidct.go), so its cost and its pixel buffers shrink with the scale.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math/bits"
)

// jpegMaxPixels is the largest frame (width × height, before scaling) decodeJPEG accepts; a
// larger one fails with errJPEGTooLarge before any pixel buffer is allocated. Callers with a
// tighter budget check readJPEGInfo (and jpegInfo.decodeBytes) before calling decodeJPEG.
const jpegMaxPixels = 1 << 27

var (
	errJPEGFormat    = errors.New("invalid or unsupported jpeg")
	errJPEGTruncated = errors.New("truncated jpeg")
	errJPEGTooLarge  = errors.New("jpeg frame too large")
	errJPEGScale     = errors.New("jpeg scale must be 1, 2, 4 or 8")
)

// jpegColor says how a file's components map to colours.
type jpegColor uint8

const (
	jpegGray  jpegColor = iota // one luma component
	jpegYCbCr                  // Y, Cb, Cr (JFIF, or Adobe transform 1)
	jpegRGB                    // R, G, B stored as they are
	jpegCMYK                   // inverted C, M, Y, K as Adobe writes them
	jpegYCCK                   // YCbCr-coded C, M, Y and an inverted K (Adobe transform 2)
)

// jpegInfo is what the header says, read without decoding any scan. The zero value describes
// no image.
type jpegInfo struct {
	Width, Height int
	Components    int  // 1, 3 or 4
	Progressive   bool // SOF2; otherwise baseline or extended sequential Huffman
	// H and V are each component's sampling factors (1 to 4); a single component is 1×1.
	H, V  [4]int
	Color jpegColor
}

// decodedSize returns the size decodeJPEG gives at the scale: ceil(w/scale) × ceil(h/scale).
func (ji jpegInfo) decodedSize(scale int) (w, h int) {
	return ceilDiv(ji.Width, scale), ceilDiv(ji.Height, scale)
}

// decodeBytes estimates the memory decodeJPEG allocates at the scale: sample planes padded to
// whole blocks, the coefficient store of a progressive file, and the colour-converted copy
// when the output type needs one. It is the number to weigh against a memory budget; the
// decoder's fixed tables and scan headers (under 128 KB) come on top.
func (ji jpegInfo) decodeBytes(scale int) int64 {
	g := newJPEGGeometry(ji, scale)
	var planes, coefs int64
	for i := 0; i < ji.Components; i++ {
		blocks := int64(g.bw[i]) * int64(g.bh[i])
		planes += blocks * int64(g.bsx[i]*g.bsy[i])
		if ji.Progressive {
			n := int64(g.coefsPerBlock(i))
			coefs += blocks * 2 * n
			if n > 1 {
				coefs += blocks * 8 // the nonzero mask
			}
		}
	}
	w, h := ji.decodedSize(scale)
	var out int64
	switch ji.Color {
	case jpegRGB, jpegCMYK, jpegYCCK:
		out = int64(w) * int64(h) * 4
	case jpegYCbCr:
		if _, ok := g.subsampleRatio(); !ok {
			out = int64(w) * int64(h) * 4
		}
	}
	return planes + coefs + out
}

// jpegGeometry is the block layout of a frame decoded at one scale. A subsampled component
// is reduced less than the scale, across and down separately, when its samples are sparser
// than the output's: at 1/2 scale the chroma of a 4:2:0 file keeps its full 8×8 blocks, and
// of a 4:2:2 file becomes 8×4 blocks, so both come out at the luma's resolution and scaled
// colour edges stay as sharp as the scaled luma.
type jpegGeometry struct {
	scale        int
	hmax, vmax   int
	mcusX, mcusY int
	nf           int
	h, v         [4]int // sampling factors
	bsx, bsy     [4]int // decoded block width and height of each component: 8, 4, 2 or 1
	bw, bh       [4]int // blocks per component plane, padded to whole MCUs
	cw, ch       [4]int // blocks a non-interleaved scan of the component codes
}

// newJPEGGeometry lays out the blocks of the frame ji describes for a decode at 1/scale.
func newJPEGGeometry(ji jpegInfo, scale int) jpegGeometry {
	g := jpegGeometry{scale: scale, hmax: 1, vmax: 1, nf: ji.Components, h: ji.H, v: ji.V}
	for i := 0; i < ji.Components; i++ {
		g.hmax = max(g.hmax, ji.H[i])
		g.vmax = max(g.vmax, ji.V[i])
	}
	g.mcusX = ceilDiv(ji.Width, 8*g.hmax)
	g.mcusY = ceilDiv(ji.Height, 8*g.vmax)
	for i := 0; i < ji.Components; i++ {
		g.bsx[i] = 8 / reduction(scale, g.hmax/ji.H[i])
		g.bsy[i] = 8 / reduction(scale, g.vmax/ji.V[i])
		g.bw[i], g.bh[i] = g.mcusX*ji.H[i], g.mcusY*ji.V[i]
		g.cw[i] = ceilDiv(ceilDiv(ji.Width*ji.H[i], g.hmax), 8)
		g.ch[i] = ceilDiv(ceilDiv(ji.Height*ji.V[i], g.vmax), 8)
	}
	return g
}

// reduction is how much to shrink the blocks of a component whose samples are sparse times
// sparser than the output's when the output is 1/scale of the frame.
func reduction(scale, sparse int) int {
	for scale > 1 && sparse >= 2 {
		scale, sparse = scale/2, sparse/2
	}
	return scale
}

// coefsPerBlock is how many coefficients, in zigzag order, a progressive decode keeps per
// block of component i: those its reduced inverse DCT reads (the DC alone for one sample).
func (g jpegGeometry) coefsPerBlock(i int) int {
	n := 1
	for r := 0; r < g.bsy[i]; r++ {
		for c := 0; c < g.bsx[i]; c++ {
			n = max(n, 1+int(unzigzag[r*8+c]))
		}
	}
	return n
}

// samplesPerMCU is how many decoded samples of component i span one MCU across (or down).
func (g jpegGeometry) samplesPerMCU(i int, horizontal bool) int {
	if horizontal {
		return g.h[i] * g.bsx[i]
	}
	return g.v[i] * g.bsy[i]
}

// subsampleRatio names the chroma subsampling of the decoded YCbCr planes in image's terms;
// ok is false when image.YCbCr cannot describe it (luma below the output resolution, Cb and
// Cr differing, odd ratios).
func (g jpegGeometry) subsampleRatio() (r image.YCbCrSubsampleRatio, ok bool) {
	if g.nf != 3 {
		return 0, false
	}
	var sx, sy [3]int
	for i := range sx {
		sx[i], sy[i] = g.samplesPerMCU(i, true), g.samplesPerMCU(i, false)
	}
	if sx[0] != g.hmax*8/g.scale || sy[0] != g.vmax*8/g.scale ||
		sx[1] != sx[2] || sy[1] != sy[2] || sx[0]%sx[1] != 0 || sy[0]%sy[1] != 0 {
		return 0, false
	}
	switch [2]int{sx[0] / sx[1], sy[0] / sy[1]} {
	case [2]int{1, 1}:
		return image.YCbCrSubsampleRatio444, true
	case [2]int{2, 1}:
		return image.YCbCrSubsampleRatio422, true
	case [2]int{2, 2}:
		return image.YCbCrSubsampleRatio420, true
	case [2]int{1, 2}:
		return image.YCbCrSubsampleRatio440, true
	case [2]int{4, 1}:
		return image.YCbCrSubsampleRatio411, true
	case [2]int{4, 2}:
		return image.YCbCrSubsampleRatio410, true
	}
	return 0, false
}

// sampleIndex returns, for each of n output columns (or rows), the column (or row) of
// component i's plane that covers it: the nearest sample, as image/jpeg upsamples.
//
// TODO: libjpeg's "fancy" (triangular) chroma upsampling would look smoother on the RGB and
// CMYK outputs; nearest keeps them identical to image/jpeg, which the tests rely on.
func (g jpegGeometry) sampleIndex(i, n int, horizontal bool) []int {
	f, fmax := g.samplesPerMCU(i, horizontal), g.hmax*8/g.scale
	if !horizontal {
		fmax = g.vmax * 8 / g.scale
	}
	idx := make([]int, n)
	for x := range idx {
		idx[x] = x * f / fmax
	}
	return idx
}

// ceilDiv is a/b rounded up, for positive a and b.
func ceilDiv(a, b int) int { return (a + b - 1) / b }

// readJPEGInfo parses markers up to the first SOS and returns the frame header. It allocates
// nothing that depends on the image size and is safe for concurrent use.
func readJPEGInfo(data []byte) (jpegInfo, error) {
	d := jpegDecoder{data: data, headerOnly: true}
	if err := d.run(); err != nil {
		return jpegInfo{}, err
	}
	if d.nf == 0 {
		return jpegInfo{}, fmt.Errorf("read jpeg header: no frame before scan: %w", errJPEGFormat)
	}
	return d.info(), nil
}

// decodeJPEG decodes data at 1/scale of its size (scale 1, 2, 4 or 8); the output is
// ceil(w/scale) × ceil(h/scale). It returns *image.Gray for one component, *image.YCbCr for
// YCbCr (as *image.RGBA when image.YCbCr cannot describe the subsampling), *image.RGBA for
// RGB-coded files and *image.CMYK for four components, with image/jpeg's colour semantics.
// At a reduced scale subsampled components are reduced less, up to the output resolution,
// so a 4:2:0 file at 1/2 comes back as a 4:4:4 *image.YCbCr: callers must read the ratio
// from the image, not from the file.
//
// A file whose entropy-coded data ends early, or that ends without EOI before its last
// progressive scan, gives both a partial image and an error wrapping errJPEGTruncated: blocks
// never reached are mid-gray in a sequential file and lack the missing refinements in a
// progressive one. The caller decides whether to use it. Other failures return a nil image
// and an error wrapping errJPEGFormat, errJPEGTooLarge or errJPEGScale. It never panics and
// allocates only what the frame header implies, refusing frames above jpegMaxPixels. It is
// safe for concurrent use.
func decodeJPEG(data []byte, scale int) (image.Image, error) {
	switch scale {
	case 1, 2, 4, 8:
	default:
		return nil, fmt.Errorf("decode jpeg at 1/%d: %w", scale, errJPEGScale)
	}
	d := &jpegDecoder{data: data, scale: scale, huff: new(jpegHuffTables)}
	err := d.run()
	if err == nil && d.scans == 0 {
		err = fmt.Errorf("jpeg has no scan: %w", errJPEGFormat)
	}
	if err != nil && !(errors.Is(err, errJPEGTruncated) && d.scans > 0) {
		return nil, err
	}
	err = d.checkComplete(err)
	if d.progressive {
		d.reconstruct()
	}
	return d.image(), err
}

// jpegScaleFor returns the largest scale in {1,2,4,8} such that the decoded image is still
// at least needW pixels wide and needH high (0 means no constraint on that side). With no
// constraint on either side there is no target to shrink to, so it returns 1.
func jpegScaleFor(w, h, needW, needH int) int {
	if needW <= 0 && needH <= 0 {
		return 1
	}
	for _, s := range [...]int{8, 4, 2} {
		if (needW <= 0 || ceilDiv(w, s) >= needW) && (needH <= 0 || ceilDiv(h, s) >= needH) {
			return s
		}
	}
	return 1
}

// zigzag maps the k-th coefficient of a block, in coding order, to its natural (row-major)
// position (T.81 figure A.6).
var zigzag = [64]uint8{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

// unzigzag is the inverse of zigzag: the coding-order index of each natural position.
var unzigzag = func() (u [64]uint8) {
	for k, z := range zigzag {
		u[z] = uint8(k)
	}
	return u
}()

// huffLookBits is how many bits the first-level Huffman table resolves at once.
const huffLookBits = 9

// huffTable is one decoding table: codes of up to huffLookBits bits come from lut in a single
// step, longer ones from the canonical-code limits (T.81 F.2.2.3).
type huffTable struct {
	lut [1 << huffLookBits]uint16 // code length << 8 | symbol; 0 for longer codes
	// fast resolves an AC code and its magnitude bits together when both fit in the
	// lookahead: value << 16 | run << 8 | bits used; 0 otherwise.
	fast    [1 << huffLookBits]int32
	maxcode [17]int32 // largest code of each length, -1 when none
	valptr  [17]int32 // symbol index of a code of each length, minus the code
	vals    [256]byte
	defined bool
}

// build fills t from a DHT table: counts of codes per length 1..16 and the symbols in order.
func (t *huffTable) build(counts []byte, vals []byte) error {
	*t = huffTable{defined: true}
	copy(t.vals[:], vals)
	code, k := 0, 0
	for l := 1; l <= 16; l++ {
		n := int(counts[l-1])
		t.maxcode[l] = -1
		if n > 0 {
			t.valptr[l] = int32(k - code)
			t.maxcode[l] = int32(code + n - 1)
		}
		for ; n > 0; n-- {
			if code >= 1<<l {
				return fmt.Errorf("huffman table: code lengths overflow: %w", errJPEGFormat)
			}
			if l <= huffLookBits {
				span := 1 << (huffLookBits - l)
				e := uint16(l<<8) | uint16(vals[k])
				for j := code * span; j < (code+1)*span; j++ {
					t.lut[j] = e
				}
			}
			code++
			k++
		}
		code <<= 1
	}
	t.buildFast()
	return nil
}

// buildFast fills t.fast from t.lut, read as an AC table.
func (t *huffTable) buildFast() {
	for i, e := range t.lut {
		l, rs := uint(e>>8), e&255
		r, s := int32(rs>>4), uint(rs&15)
		if e == 0 || s == 0 || l+s > huffLookBits {
			continue
		}
		v := int32(i>>(huffLookBits-l-s)) & (1<<s - 1)
		if v < 1<<(s-1) {
			v -= 1<<s - 1
		}
		t.fast[i] = v<<16 | r<<8 | int32(l+s)
	}
}

// bitReader reads the entropy-coded bits of a scan, removing the 0x00 stuffed after each 0xFF.
// At a marker or at the end of data it supplies zero bits and counts them, so the decoder
// never reads past the data and can tell whether it ran out (T.81 F.1.2.3).
type bitReader struct {
	data  []byte
	pos   int    // next byte to read
	acc   uint64 // the low n bits are unread, oldest first
	n     uint
	fake  int  // zero bytes supplied past a marker or the end of data
	stuck bool // at a marker or the end of data
}

// reset starts reading entropy-coded data at data[pos].
func (br *bitReader) reset(data []byte, pos int) {
	*br = bitReader{data: data, pos: pos}
}

// fill tops the accumulator up to more than 56 bits. Eight bytes without a 0xFF among them
// go in at once; otherwise it goes byte by byte.
func (br *bitReader) fill() {
	if !br.stuck && br.pos+8 <= len(br.data) {
		w := binary.BigEndian.Uint64(br.data[br.pos:])
		const ones, highs = 0x0101010101010101, 0x8080808080808080
		if (^w-ones)&w&highs == 0 { // no byte of w is 0xFF
			k := (64 - br.n) / 8
			br.acc = br.acc<<(8*k) | w>>(64-8*k)
			br.n += 8 * k
			br.pos += int(k)
			return
		}
	}
	for br.n <= 56 {
		var b byte
		switch {
		case br.stuck || br.pos >= len(br.data):
			br.stuck = true
			br.fake++
		case br.data[br.pos] != 0xFF:
			b = br.data[br.pos]
			br.pos++
		case br.pos+1 < len(br.data) && br.data[br.pos+1] == 0:
			b = 0xFF
			br.pos += 2
		default: // a marker, fill bytes, or a lone 0xFF at the end
			if br.pos+1 >= len(br.data) {
				br.pos = len(br.data)
			}
			br.stuck = true
			br.fake++
		}
		br.acc = br.acc<<8 | uint64(b)
		br.n += 8
	}
}

// overrun reports whether the decoder has used bits that the end of data made up.
func (br *bitReader) overrun() bool {
	return br.fake > 0 && br.pos >= len(br.data) && uint(br.fake)*8 > br.n
}

// huffSlow decodes a code longer than huffLookBits from the canonical-code limits; the
// accumulator must hold at least 16 bits.
func (br *bitReader) huffSlow(t *huffTable) (byte, bool) {
	for l := huffLookBits + 1; l <= 16; l++ {
		c := int32(br.acc>>(br.n-uint(l))) & (1<<l - 1)
		if c <= t.maxcode[l] {
			i := t.valptr[l] + c
			if i < 0 || i > 255 {
				return 0, false
			}
			br.n -= uint(l)
			return t.vals[i], true
		}
	}
	return 0, false
}

// acSymbol decodes one progressive AC symbol and reads the raw bits that follow it: the
// magnitude bits of a coefficient (rs&15 of them), or the run-length bits of an EOB run
// (rs>>4 of them when rs&15 is 0). One call per symbol keeps the band loops light.
func (br *bitReader) acSymbol(t *huffTable) (rs byte, extra int32, ok bool) {
	if br.n < 32 { // a code (≤ 16 bits) and its extra bits (≤ 15) fit in 32
		br.fill()
	}
	if e := t.lut[(br.acc>>(br.n-huffLookBits))&(1<<huffLookBits-1)]; e != 0 {
		br.n -= uint(e >> 8)
		rs = byte(e)
	} else if rs, ok = br.huffSlow(t); !ok {
		return 0, 0, false
	}
	nb := uint(rs & 15)
	if nb == 0 && rs>>4 < 15 {
		nb = uint(rs >> 4)
	}
	br.n -= nb
	return rs, int32(br.acc>>br.n) & (1<<nb - 1), true
}

// dcDiff decodes one DC difference: its magnitude category, then the extended value
// (F.2.2.1). ok is false for a bad code or a category above 15.
func (br *bitReader) dcDiff(t *huffTable) (diff int32, ok bool) {
	if br.n < 32 {
		br.fill()
	}
	var s byte
	if e := t.lut[(br.acc>>(br.n-huffLookBits))&(1<<huffLookBits-1)]; e != 0 {
		br.n -= uint(e >> 8)
		s = byte(e)
	} else if s, ok = br.huffSlow(t); !ok {
		return 0, false
	}
	if s > 15 {
		return 0, false
	}
	if s == 0 {
		return 0, true
	}
	br.n -= uint(s)
	v := int32(br.acc>>br.n) & (1<<s - 1)
	if v < 1<<(s-1) {
		v -= 1<<s - 1
	}
	return v, true
}

// receive reads s (at most 16) raw bits.
func (br *bitReader) receive(s uint) int32 {
	if br.n < s {
		br.fill()
	}
	br.n -= s
	return int32(br.acc>>br.n) & (1<<s - 1)
}

// jpegComponent is one colour component of the frame and its decoded plane.
type jpegComponent struct {
	id     byte
	h, v   int
	tq     int
	pix    []byte   // decoded samples, stride bytes a row
	stride int      // bw*bsx
	bsx    int      // width of a decoded block
	bsy    int      // height of a decoded block
	ncoef  int      // coefficients kept per block by a progressive decode
	coef   []int16  // progressive coefficients, coefsPerBlock per block, zigzag order
	nz     []uint64 // per block, bit k set when AC coefficient k is nonzero (kept or not)
	pred   int32    // DC predictor of the current scan
	td, ta int      // Huffman tables of the current scan
	done   bool     // some scan has decoded it
}

// scanMode is the kind of entropy-coded data a scan holds.
type scanMode uint8

const (
	scanBaseline scanMode = iota
	scanDCFirst
	scanDCRefine
	scanACFirst
	scanACRefine
	scanGray // not a scan: paints undecoded sequential blocks mid-gray
)

// jpegScan is the state of the scan being decoded.
type jpegScan struct {
	mode   scanMode
	comps  []*jpegComponent
	ss, se int
	al     uint
	eobrun int
}

// jpegHuffTables are the Huffman tables a decode has defined, by class and id.
type jpegHuffTables struct {
	dc, ac [4]huffTable
}

// jpegDecoder holds one decode. It is used by a single goroutine.
type jpegDecoder struct {
	data       []byte
	pos        int
	headerOnly bool
	scale      int

	nf          int
	width       int
	height      int
	progressive bool
	comps       [4]jpegComponent
	geo         jpegGeometry
	jfif        bool
	adobe       bool
	transform   byte
	qt          [4][64]int32    // natural order
	huff        *jpegHuffTables // nil when only the header is read
	restart     int
	scans       int // scans whose decoding started
	sawEOI      bool
	allocated   bool
	br          bitReader
	blk         [64]int32
}

// info is the frame header read so far.
func (d *jpegDecoder) info() jpegInfo {
	ji := jpegInfo{Width: d.width, Height: d.height, Components: d.nf, Progressive: d.progressive}
	for i := 0; i < d.nf; i++ {
		ji.H[i], ji.V[i] = d.comps[i].h, d.comps[i].v
	}
	ji.Color = d.colorKind()
	return ji
}

// colorKind reads JFIF, Adobe APP14 and component ids the way image/jpeg does: JFIF means
// YCbCr; otherwise Adobe transform 0, or ids 'R', 'G', 'B', mean RGB. Four components are
// YCCK under any nonzero Adobe transform and inverted CMYK otherwise (image/jpeg refuses
// them without APP14; libjpeg assumes CMYK, and so does this).
func (d *jpegDecoder) colorKind() jpegColor {
	switch {
	case d.nf == 1:
		return jpegGray
	case d.nf == 4 && d.adobe && d.transform != 0:
		return jpegYCCK
	case d.nf == 4:
		return jpegCMYK
	case d.jfif:
		return jpegYCbCr
	case d.adobe && d.transform == 0:
		return jpegRGB
	case d.comps[0].id == 'R' && d.comps[1].id == 'G' && d.comps[2].id == 'B':
		return jpegRGB
	}
	return jpegYCbCr
}

// run parses markers and decodes scans until EOI; headerOnly stops at the first SOS.
func (d *jpegDecoder) run() error {
	if len(d.data) < 2 || d.data[0] != 0xFF || d.data[1] != 0xD8 {
		return fmt.Errorf("no jpeg start of image: %w", errJPEGFormat)
	}
	d.pos = 2
	for {
		m, err := d.nextMarker()
		if err != nil {
			return err
		}
		switch {
		case m == 0xD9:
			d.sawEOI = true
			return nil
		case m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7):
			continue // standalone markers carry no segment
		}
		seg, err := d.segment()
		if err != nil {
			return err
		}
		if m == 0xDA && d.headerOnly {
			return nil
		}
		if err := d.handle(m, seg); err != nil {
			return err
		}
	}
}

// handle acts on one marker segment.
func (d *jpegDecoder) handle(m byte, seg []byte) error {
	switch {
	case m == 0xC0 || m == 0xC1 || m == 0xC2:
		return d.parseSOF(seg, m == 0xC2)
	case m == 0xC4 && !d.headerOnly:
		return d.parseDHT(seg)
	case m == 0xDB && !d.headerOnly:
		return d.parseDQT(seg)
	case m == 0xDD:
		return d.parseDRI(seg)
	case m == 0xE0:
		d.jfif = d.jfif || (len(seg) >= 5 && string(seg[:5]) == "JFIF\x00")
	case m == 0xEE:
		if len(seg) >= 12 && string(seg[:5]) == "Adobe" {
			d.adobe, d.transform = true, seg[11]
		}
	case m == 0xDA:
		return d.scan(seg)
	case m >= 0xC3 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC:
		return fmt.Errorf("jpeg frame type SOF%d: %w", m-0xC0, errJPEGFormat)
	}
	return nil
}

// nextMarker moves past any bytes up to the next marker and returns its code. Entropy-coded
// bytes a scan left unread, stuffed 0xFF00 pairs, fill bytes and stray RST markers between
// segments are all skipped.
func (d *jpegDecoder) nextMarker() (byte, error) {
	for {
		for d.pos < len(d.data) && d.data[d.pos] != 0xFF {
			d.pos++
		}
		for d.pos < len(d.data) && d.data[d.pos] == 0xFF {
			d.pos++
		}
		if d.pos >= len(d.data) {
			return 0, errNoEOI
		}
		m := d.data[d.pos]
		d.pos++
		if m != 0 && (m < 0xD0 || m > 0xD7) {
			return m, nil
		}
	}
}

// segment returns the payload of the marker segment at d.pos and moves past it.
func (d *jpegDecoder) segment() ([]byte, error) {
	if d.pos+2 > len(d.data) {
		return nil, fmt.Errorf("jpeg marker segment: %w", errJPEGTruncated)
	}
	n := int(d.data[d.pos])<<8 | int(d.data[d.pos+1])
	if n < 2 {
		return nil, fmt.Errorf("jpeg marker segment length %d: %w", n, errJPEGFormat)
	}
	if d.pos+n > len(d.data) {
		return nil, fmt.Errorf("jpeg marker segment: %w", errJPEGTruncated)
	}
	seg := d.data[d.pos+2 : d.pos+n]
	d.pos += n
	return seg, nil
}

// parseSOF reads the frame header (T.81 B.2.2).
func (d *jpegDecoder) parseSOF(p []byte, progressive bool) error {
	if d.nf != 0 {
		return fmt.Errorf("second jpeg frame header: %w", errJPEGFormat)
	}
	if len(p) < 6 {
		return fmt.Errorf("short jpeg frame header: %w", errJPEGFormat)
	}
	if p[0] != 8 {
		return fmt.Errorf("jpeg sample precision %d: %w", p[0], errJPEGFormat)
	}
	h, w, nf := int(p[1])<<8|int(p[2]), int(p[3])<<8|int(p[4]), int(p[5])
	if w == 0 || h == 0 {
		return fmt.Errorf("jpeg frame %dx%d (DNL is not supported): %w", w, h, errJPEGFormat)
	}
	if nf != 1 && nf != 3 && nf != 4 {
		return fmt.Errorf("jpeg with %d components: %w", nf, errJPEGFormat)
	}
	if len(p) != 6+3*nf {
		return fmt.Errorf("jpeg frame header length: %w", errJPEGFormat)
	}
	for i := 0; i < nf; i++ {
		c := &d.comps[i]
		c.id, c.h, c.v, c.tq = p[6+3*i], int(p[7+3*i]>>4), int(p[7+3*i]&15), int(p[8+3*i])
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 || c.tq > 3 {
			return fmt.Errorf("jpeg component %d sampling or table: %w", i, errJPEGFormat)
		}
		for j := 0; j < i; j++ {
			if d.comps[j].id == c.id {
				return fmt.Errorf("jpeg component id %d repeated: %w", c.id, errJPEGFormat)
			}
		}
		if nf == 1 {
			c.h, c.v = 1, 1 // a lone component is coded block by block (A.2.2)
		}
	}
	d.nf, d.width, d.height, d.progressive = nf, w, h, progressive
	return nil
}

// parseDHT reads Huffman tables (B.2.4.2).
func (d *jpegDecoder) parseDHT(p []byte) error {
	for len(p) > 0 {
		if len(p) < 17 {
			return fmt.Errorf("short jpeg huffman table: %w", errJPEGFormat)
		}
		class, id := p[0]>>4, p[0]&15
		if class > 1 || id > 3 {
			return fmt.Errorf("jpeg huffman table class %d id %d: %w", class, id, errJPEGFormat)
		}
		total := 0
		for _, c := range p[1:17] {
			total += int(c)
		}
		if total > 256 || len(p) < 17+total {
			return fmt.Errorf("jpeg huffman table size: %w", errJPEGFormat)
		}
		t := &d.huff.dc[id]
		if class == 1 {
			t = &d.huff.ac[id]
		}
		if err := t.build(p[1:17], p[17:17+total]); err != nil {
			return err
		}
		p = p[17+total:]
	}
	return nil
}

// parseDQT reads quantisation tables of 8 or 16 bits (B.2.4.1).
func (d *jpegDecoder) parseDQT(p []byte) error {
	for len(p) > 0 {
		prec, id := p[0]>>4, p[0]&15
		if prec > 1 || id > 3 {
			return fmt.Errorf("jpeg quantisation table %d/%d: %w", prec, id, errJPEGFormat)
		}
		n := 1 + 64*(1+int(prec))
		if len(p) < n {
			return fmt.Errorf("short jpeg quantisation table: %w", errJPEGFormat)
		}
		for k := 0; k < 64; k++ {
			v := int32(p[1+k])
			if prec == 1 {
				v = int32(p[1+2*k])<<8 | int32(p[2+2*k])
			}
			d.qt[id][zigzag[k]] = v
		}
		p = p[n:]
	}
	return nil
}

// parseDRI reads the restart interval (B.2.4.4).
func (d *jpegDecoder) parseDRI(p []byte) error {
	if len(p) != 2 {
		return fmt.Errorf("jpeg restart interval length: %w", errJPEGFormat)
	}
	d.restart = int(p[0])<<8 | int(p[1])
	return nil
}

// allocate makes the sample planes (and coefficient store) once the frame is known.
func (d *jpegDecoder) allocate() error {
	if d.width*d.height > jpegMaxPixels {
		return fmt.Errorf("jpeg frame %dx%d: %w", d.width, d.height, errJPEGTooLarge)
	}
	d.geo = newJPEGGeometry(d.info(), d.scale)
	g := &d.geo
	for i := 0; i < d.nf; i++ {
		c := &d.comps[i]
		c.bsx, c.bsy, c.ncoef = g.bsx[i], g.bsy[i], g.coefsPerBlock(i)
		c.stride = g.bw[i] * c.bsx
		c.pix = make([]byte, c.stride*g.bh[i]*c.bsy)
		if d.progressive {
			c.coef = make([]int16, g.bw[i]*g.bh[i]*c.ncoef)
			if c.ncoef > 1 {
				c.nz = make([]uint64, g.bw[i]*g.bh[i])
			}
		}
	}
	d.allocated = true
	return nil
}

// scan reads a scan header (B.2.3) and decodes its entropy-coded data.
func (d *jpegDecoder) scan(p []byte) error {
	s, err := d.parseSOS(p)
	if err != nil {
		return err
	}
	if !d.allocated {
		if err := d.allocate(); err != nil {
			return err
		}
	}
	d.scans++
	if s.comps[0].ncoef == 1 && (s.mode == scanACFirst || s.mode == scanACRefine) {
		return nil // one sample per block needs the DC only; nextMarker skips the data
	}
	for _, c := range s.comps {
		c.done = true
	}

	d.br.reset(d.data, d.pos)
	err = d.decodeScan(s)
	d.pos = d.br.pos
	return err
}

// parseSOS validates a scan header against the frame and the tables defined so far.
func (d *jpegDecoder) parseSOS(p []byte) (*jpegScan, error) {
	if d.nf == 0 {
		return nil, fmt.Errorf("jpeg scan before frame header: %w", errJPEGFormat)
	}
	if len(p) < 1 || p[0] < 1 || int(p[0]) > d.nf || len(p) != 4+2*int(p[0]) {
		return nil, fmt.Errorf("jpeg scan header: %w", errJPEGFormat)
	}
	ns := int(p[0])
	s := &jpegScan{ss: int(p[1+2*ns]), se: int(p[2+2*ns])}
	ah, al := p[3+2*ns]>>4, p[3+2*ns]&15
	s.al = uint(al)
	blocks := 0
	for i := 0; i < ns; i++ {
		c := d.component(p[1+2*i])
		if c == nil {
			return nil, fmt.Errorf("jpeg scan names unknown component: %w", errJPEGFormat)
		}
		for _, o := range s.comps {
			if o == c {
				return nil, fmt.Errorf("jpeg scan repeats a component: %w", errJPEGFormat)
			}
		}
		c.td, c.ta = int(p[2+2*i]>>4), int(p[2+2*i]&15)
		if c.td > 3 || c.ta > 3 {
			return nil, fmt.Errorf("jpeg scan huffman table id: %w", errJPEGFormat)
		}
		c.pred = 0
		s.comps = append(s.comps, c)
		blocks += c.h * c.v
	}
	if ns > 1 && blocks > 10 {
		return nil, fmt.Errorf("jpeg scan with %d blocks per MCU: %w", blocks, errJPEGFormat)
	}
	if err := d.scanMode(s, ah); err != nil {
		return nil, err
	}
	return s, d.checkTables(s)
}

// component finds the frame component a scan names by id; nil if there is none.
func (d *jpegDecoder) component(id byte) *jpegComponent {
	for i := 0; i < d.nf; i++ {
		if d.comps[i].id == id {
			return &d.comps[i]
		}
	}
	return nil
}

// scanMode works out the kind of scan from its spectral selection and approximation (G.1.1).
func (d *jpegDecoder) scanMode(s *jpegScan, ah byte) error {
	if !d.progressive {
		s.mode, s.ss, s.se, s.al = scanBaseline, 0, 63, 0
		return nil
	}
	bad := s.al > 13 || s.se > 63 || s.ss > s.se || (s.ss == 0 && s.se != 0) ||
		(s.ss > 0 && len(s.comps) != 1)
	if bad {
		return fmt.Errorf("jpeg progressive scan parameters: %w", errJPEGFormat)
	}
	switch {
	case s.ss == 0 && ah == 0:
		s.mode = scanDCFirst
	case s.ss == 0:
		s.mode = scanDCRefine
	case ah == 0:
		s.mode = scanACFirst
	default:
		s.mode = scanACRefine
	}
	return nil
}

// checkTables makes sure every Huffman table the scan will use is defined.
func (d *jpegDecoder) checkTables(s *jpegScan) error {
	needDC := s.mode == scanBaseline || s.mode == scanDCFirst
	needAC := s.mode == scanBaseline || s.mode == scanACFirst || s.mode == scanACRefine
	for _, c := range s.comps {
		if (needDC && !d.huff.dc[c.td].defined) || (needAC && !d.huff.ac[c.ta].defined) {
			return fmt.Errorf("jpeg scan uses an undefined huffman table: %w", errJPEGFormat)
		}
	}
	return nil
}

// decodeScan decodes every MCU of the scan, resynchronising at restart markers (F.1.2.3).
func (d *jpegDecoder) decodeScan(s *jpegScan) error {
	perRow, rows := d.geo.mcusX, d.geo.mcusY
	if len(s.comps) == 1 {
		i := s.comps[0].index(d)
		perRow, rows = d.geo.cw[i], d.geo.ch[i]
	}
	total := perRow * rows
	for m := 0; m < total; m++ {
		if d.restart > 0 && m > 0 && m%d.restart == 0 {
			d.restartSync(s)
		}
		if err := d.mcu(s, m%perRow, m/perRow); err != nil {
			return d.scanFailed(s, m, perRow, total, err)
		}
		if d.br.overrun() {
			return d.scanFailed(s, m, perRow, total, errJPEGTruncated)
		}
	}
	return nil
}

// index is the position of c among d's components.
func (c *jpegComponent) index(d *jpegDecoder) int {
	for i := range d.comps {
		if &d.comps[i] == c {
			return i
		}
	}
	return 0
}

// scanFailed reports a scan that stopped at MCU m. Running out of data, or a bad code past
// the end of data, is truncation: a sequential scan's remaining blocks are painted gray.
//
// TODO: a bad code inside the data fails the whole decode, where libjpeg warns and goes on
// to the next restart marker; resynchronising there would save images with one damaged
// interval, if origins turn out to serve such files.
func (d *jpegDecoder) scanFailed(s *jpegScan, m, perRow, total int, err error) error {
	if !errors.Is(err, errJPEGTruncated) && !d.br.overrun() {
		return err
	}
	if s.mode == scanBaseline {
		s.mode = scanGray
		for ; m < total; m++ {
			_ = d.mcu(s, m%perRow, m/perRow)
		}
	}
	return fmt.Errorf("jpeg scan data ends early: %w", errJPEGTruncated)
}

// restartSync drops the bits left before a restart marker, moves past the marker and resets
// the predictors. A missing or out-of-order RST is tolerated: decoding goes on from the next
// RST found, or with zero bits if another marker comes first.
func (d *jpegDecoder) restartSync(s *jpegScan) {
	p := d.br.pos
	for ; p+1 < len(d.data); p++ {
		m := d.data[p+1]
		if d.data[p] != 0xFF || m == 0xFF {
			continue
		}
		if m == 0 {
			p++ // a stuffed data byte
			continue
		}
		if m >= 0xD0 && m <= 0xD7 {
			p += 2
		}
		break
	}
	p = min(p, len(d.data))
	d.br.reset(d.data, p)
	for _, c := range s.comps {
		c.pred = 0
	}
	s.eobrun = 0
}

// mcu decodes one MCU: one block of a non-interleaved scan, or each component's h×v blocks.
func (d *jpegDecoder) mcu(s *jpegScan, mx, my int) error {
	if len(s.comps) == 1 {
		return d.block(s, s.comps[0], mx, my)
	}
	for _, c := range s.comps {
		for v := 0; v < c.v; v++ {
			for h := 0; h < c.h; h++ {
				if err := d.block(s, c, mx*c.h+h, my*c.v+v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// block decodes (or paints) block bx, by of component c as the scan's mode says.
func (d *jpegDecoder) block(s *jpegScan, c *jpegComponent, bx, by int) error {
	switch s.mode {
	case scanBaseline:
		return d.baselineBlock(c, c.pix[by*c.bsy*c.stride+bx*c.bsx:], c.stride)
	case scanGray:
		fillBlock(c.pix[by*c.bsy*c.stride+bx*c.bsx:], c.stride, c.bsx, c.bsy, 128)
		return nil
	}
	n := c.ncoef
	b := by*(c.stride/c.bsx) + bx
	coef := c.coef[b*n : b*n+n]
	switch s.mode {
	case scanDCFirst:
		return d.dcFirst(c, coef, s.al)
	case scanDCRefine:
		if d.br.receive(1) != 0 {
			coef[0] |= 1 << s.al
		}
		return nil
	case scanACFirst:
		return d.acFirst(s, c, coef, &c.nz[b])
	}
	return d.acRefine(s, c, coef, &c.nz[b])
}

var (
	errBadCode = fmt.Errorf("jpeg huffman code not in table: %w", errJPEGFormat)
	errCoefRun = fmt.Errorf("jpeg coefficient run past the block: %w", errJPEGFormat)
	errNoEOI   = fmt.Errorf("jpeg ends without end of image: %w", errJPEGTruncated)
)

// baselineBlock decodes one sequential block (F.2.2) and writes its samples to dst.
func (d *jpegDecoder) baselineBlock(c *jpegComponent, dst []byte, stride int) error {
	diff, ok := d.br.dcDiff(&d.huff.dc[c.td])
	if !ok {
		return errBadCode
	}
	c.pred += diff
	q := &d.qt[c.tq]
	blk := &d.blk
	blk[0] = c.pred * q[0]
	if c.ncoef == 1 {
		if err := d.br.skipAC(&d.huff.ac[c.ta]); err != nil {
			return err
		}
		dst[0] = dcSample(blk[0])
		return nil
	}
	last, err := d.baselineAC(&d.huff.ac[c.ta], q)
	if err != nil {
		return err
	}
	d.storeBlock(dst, stride, c.bsx, c.bsy, last)
	for k := 0; k <= last; k++ {
		blk[zigzag[k]] = 0
	}
	return nil
}

// baselineAC decodes the 63 AC coefficients of a sequential block into d.blk, dequantized,
// and returns the zigzag index of the last one. It keeps the bit accumulator in locals and
// takes a code and its magnitude bits in one table look-up when they fit.
func (d *jpegDecoder) baselineAC(ac *huffTable, q *[64]int32) (int, error) {
	br := &d.br
	blk := &d.blk
	acc, n := br.acc, br.n
	last := 0
	for k := 1; k < 64; k++ {
		if n < 32 { // a code (≤ 16 bits) and its magnitude (≤ 15) fit in 32
			br.acc, br.n = acc, n
			br.fill()
			acc, n = br.acc, br.n
		}
		i := (acc >> (n - huffLookBits)) & (1<<huffLookBits - 1)
		if f := ac.fast[i]; f != 0 {
			n -= uint(f & 255)
			k += int(f>>8) & 255
			if k > 63 {
				return 0, errCoefRun
			}
			z := zigzag[k]
			blk[z] = (f >> 16) * q[z]
			last = k
			continue
		}

		var rs byte
		if e := ac.lut[i]; e != 0 {
			n -= uint(e >> 8)
			rs = byte(e)
		} else {
			br.acc, br.n = acc, n
			sym, ok := br.huffSlow(ac)
			if !ok {
				return 0, errBadCode
			}
			acc, n, rs = br.acc, br.n, sym
		}
		r, s := int(rs>>4), uint(rs&15)
		if s == 0 {
			if r != 15 {
				break
			}
			k += 15
			continue
		}
		k += r
		if k > 63 {
			return 0, errCoefRun
		}
		v := int32(acc>>(n-s)) & (1<<s - 1)
		n -= s
		if v < 1<<(s-1) {
			v -= 1<<s - 1
		}
		z := zigzag[k]
		blk[z] = v * q[z]
		last = k
	}
	br.acc, br.n = acc, n
	return last, nil
}

// skipAC reads past the AC coefficients of a sequential block whose component is decoded
// at one sample per block: the same walk as baselineAC without storing anything.
func (br *bitReader) skipAC(ac *huffTable) error {
	acc, n := br.acc, br.n
	for k := 1; k < 64; k++ {
		if n < 32 {
			br.acc, br.n = acc, n
			br.fill()
			acc, n = br.acc, br.n
		}
		i := (acc >> (n - huffLookBits)) & (1<<huffLookBits - 1)
		if f := ac.fast[i]; f != 0 {
			n -= uint(f & 255)
			k += int(f>>8) & 255
			continue
		}

		var rs byte
		if e := ac.lut[i]; e != 0 {
			n -= uint(e >> 8)
			rs = byte(e)
		} else {
			br.acc, br.n = acc, n
			sym, ok := br.huffSlow(ac)
			if !ok {
				return errBadCode
			}
			acc, n, rs = br.acc, br.n, sym
		}
		r, s := int(rs>>4), uint(rs&15)
		if s == 0 && r != 15 {
			break
		}
		k += r
		n -= s
	}
	br.acc, br.n = acc, n
	return nil
}

// storeBlock writes the bsx×bsy inverse DCT of d.blk to dst; last is 0 when only the DC is
// nonzero (any other value otherwise), so that such a block is a plain fill.
func (d *jpegDecoder) storeBlock(dst []byte, stride, bsx, bsy, last int) {
	if last == 0 || (bsx == 1 && bsy == 1) {
		fillBlock(dst, stride, bsx, bsy, dcSample(d.blk[0]))
		return
	}
	switch {
	case bsx != bsy:
		idctRect(&d.blk, dst, stride, bsx, bsy)
	case bsx == 8:
		idct8(&d.blk, dst, stride)
	case bsx == 4:
		idct4(&d.blk, dst, stride)
	default:
		idct2(&d.blk, dst, stride)
	}
}

// dcFirst decodes the first DC scan of a progressive block (G.1.2.1).
func (d *jpegDecoder) dcFirst(c *jpegComponent, coef []int16, al uint) error {
	diff, ok := d.br.dcDiff(&d.huff.dc[c.td])
	if !ok {
		return errBadCode
	}
	c.pred += diff
	coef[0] = int16(c.pred << al)
	return nil
}

// acFirst decodes the first scan of a spectral band (G.1.2.2), with end-of-band runs.
func (d *jpegDecoder) acFirst(s *jpegScan, c *jpegComponent, coef []int16, nz *uint64) error {
	if s.eobrun > 0 {
		s.eobrun--
		return nil
	}
	br := &d.br
	t := &d.huff.ac[c.ta]
	for k := s.ss; k <= s.se; k++ {
		rs, v, ok := br.acSymbol(t)
		if !ok {
			return errBadCode
		}
		r, sz := int(rs>>4), uint(rs&15)
		if sz == 0 {
			if r < 15 {
				s.eobrun = 1<<r - 1 + int(v)
				return nil
			}
			k += 15
			continue
		}
		k += r
		if k > s.se {
			return fmt.Errorf("jpeg coefficient run past the band: %w", errJPEGFormat)
		}
		if v < 1<<(sz-1) {
			v -= 1<<sz - 1
		}
		if v := int16(v << s.al); v != 0 {
			if k < len(coef) {
				coef[k] = v
			}
			*nz |= 1 << k
		}
	}
	return nil
}

// acRefine adds one bit of precision to a spectral band (G.1.2.3): a correction bit for each
// coefficient already nonzero, and new coefficients of magnitude 1 << al.
func (d *jpegDecoder) acRefine(s *jpegScan, c *jpegComponent, coef []int16, nz *uint64) error {
	br := &d.br
	t := &d.huff.ac[c.ta]
	p1, m1 := int16(1)<<s.al, int16(-1)<<s.al
	k := s.ss
	for s.eobrun == 0 && k <= s.se {
		rs, extra, ok := br.acSymbol(t)
		if !ok {
			return errBadCode
		}
		r, sz := int(rs>>4), rs&15
		var val int16
		switch {
		case sz == 1 && extra != 0:
			val = p1
		case sz == 1:
			val = m1
		case sz != 0:
			return fmt.Errorf("jpeg refinement magnitude %d: %w", sz, errJPEGFormat)
		case r < 15:
			s.eobrun = 1<<r + int(extra)
			continue // the loop ends; the rest of the band is refined below
		}
		k = br.refineRun(coef, *nz, k, s.se, r, p1, m1)
		if k <= s.se && val != 0 {
			if k < len(coef) {
				coef[k] = val
			}
			*nz |= 1 << k
		}
		k++
	}
	if s.eobrun > 0 {
		br.refineRun(coef, *nz, k, s.se, 64, p1, m1)
		s.eobrun--
	}
	return nil
}

// refineRun moves from k past r coefficients that are still zero, reading the correction bit
// of each nonzero one it crosses, and returns the index of the next zero one (or se+1). With
// r = 64 it refines the rest of the band. nz marks the nonzero coefficients, so only those
// are visited.
func (br *bitReader) refineRun(coef []int16, nz uint64, k, se, r int, p1, m1 int16) int {
	band := (uint64(1)<<(se+1) - 1) &^ (uint64(1)<<k - 1)
	zeros := ^nz & band
	if r >= bits.OnesCount64(zeros) {
		zeros = 0 // the run covers the rest of the band
	}
	for ; r > 0 && zeros != 0; r-- {
		zeros &= zeros - 1
	}
	end := se + 1
	if zeros != 0 {
		end = bits.TrailingZeros64(zeros)
	}

	// The correction bits come in coefficient order, up to 32 at a time.
	acc, n := br.acc, br.n
	for m := nz & band & (uint64(1)<<end - 1); m != 0; {
		if n < 32 {
			br.acc, br.n = acc, n
			br.fill()
			acc, n = br.acc, br.n
		}
		take := uint(min(bits.OnesCount64(m), 32))
		n -= take
		chunk := acc >> n
		for j := int(take) - 1; j >= 0; j-- {
			i := bits.TrailingZeros64(m)
			m &= m - 1
			if chunk>>uint(j)&1 == 0 || i >= len(coef) {
				continue // no correction, or a coefficient the scale does not keep
			}
			if z := &coef[i]; *z&p1 == 0 {
				if *z > 0 {
					*z += p1
				} else {
					*z += m1
				}
			}
		}
	}
	br.acc, br.n = acc, n
	return end
}

// checkComplete paints the components no scan reached mid-gray (in a sequential file) and
// returns the error the decode ends with, given the one parsing ended with. Data that ends
// between segments, without EOI, is fine for a sequential file whose components were all
// decoded, and truncation for a progressive one.
func (d *jpegDecoder) checkComplete(err error) error {
	if errors.Is(err, errNoEOI) && !d.progressive {
		err = nil
	}
	for i := 0; i < d.nf; i++ {
		c := &d.comps[i]
		if !c.done && !d.progressive {
			for j := range c.pix {
				c.pix[j] = 128
			}
			if err == nil {
				err = fmt.Errorf("jpeg component %d never decoded: %w", i, errJPEGTruncated)
			}
		}
	}
	return err
}

// reconstruct dequantizes the progressive coefficients and writes every block's samples.
//
// TODO: it uses the quantisation tables in force at the end of the file; a file that
// redefined a table between its scans (T.81 allows it, encoders do not do it) would need
// the table each component had at its first scan.
func (d *jpegDecoder) reconstruct() {
	for i := 0; i < d.nf; i++ {
		c := &d.comps[i]
		n := c.ncoef
		q := &d.qt[c.tq]
		bw, bh := d.geo.bw[i], d.geo.bh[i]
		for by := 0; by < bh; by++ {
			for bx := 0; bx < bw; bx++ {
				b := by*bw + bx
				coef := c.coef[b*n:][:n]
				var nz uint64
				if c.nz != nil {
					nz = c.nz[b]
				}
				last := d.loadBlock(coef, nz, q)
				d.storeBlock(c.pix[by*c.bsy*c.stride+bx*c.bsx:], c.stride, c.bsx, c.bsy, last)
			}
		}
	}
}

// loadBlock dequantizes the kept coefficients into d.blk, which it clears first, visiting
// only those nz marks as nonzero, and returns 0 when only the DC is nonzero (a positive
// number otherwise), as storeBlock wants.
func (d *jpegDecoder) loadBlock(coef []int16, nz uint64, q *[64]int32) int {
	blk := &d.blk
	*blk = [64]int32{}
	blk[0] = int32(coef[0]) * q[0]
	if len(coef) < 64 {
		nz &= uint64(1)<<len(coef) - 1
	}
	any := 0
	for m := nz &^ 1; m != 0; m &= m - 1 {
		k := bits.TrailingZeros64(m)
		z := zigzag[k]
		blk[z] = int32(coef[k]) * q[z]
		any = 1
	}
	return any
}

// image wraps the decoded planes in the image type the colour kind calls for.
func (d *jpegDecoder) image() image.Image {
	w, h := d.info().decodedSize(d.scale)
	r := image.Rect(0, 0, w, h)
	c := &d.comps
	switch kind := d.colorKind(); kind {
	case jpegGray:
		return &image.Gray{Pix: c[0].pix, Stride: c[0].stride, Rect: r}
	case jpegYCbCr:
		if ratio, ok := d.geo.subsampleRatio(); ok {
			return &image.YCbCr{Y: c[0].pix, Cb: c[1].pix, Cr: c[2].pix,
				YStride: c[0].stride, CStride: c[1].stride, SubsampleRatio: ratio, Rect: r}
		}
		return d.toRGBA(r, true)
	case jpegRGB:
		return d.toRGBA(r, false)
	default:
		return d.toCMYK(r, kind == jpegYCCK)
	}
}

// toRGBA converts three planes, YCbCr (ycc) or RGB, of any sampling to an RGBA image.
func (d *jpegDecoder) toRGBA(r image.Rectangle, ycc bool) *image.RGBA {
	img := image.NewRGBA(r)
	w, h := r.Dx(), r.Dy()
	var xs, ys [3][]int
	for i := 0; i < 3; i++ {
		xs[i], ys[i] = d.geo.sampleIndex(i, w, true), d.geo.sampleIndex(i, h, false)
	}
	c := &d.comps
	for y := 0; y < h; y++ {
		p0 := c[0].pix[ys[0][y]*c[0].stride:]
		p1 := c[1].pix[ys[1][y]*c[1].stride:]
		p2 := c[2].pix[ys[2][y]*c[2].stride:]
		out := img.Pix[y*img.Stride : y*img.Stride+4*w]
		for x := 0; x < w; x++ {
			a, b, e := p0[xs[0][x]], p1[xs[1][x]], p2[xs[2][x]]
			if ycc {
				a, b, e = color.YCbCrToRGB(a, b, e)
			}
			out[4*x], out[4*x+1], out[4*x+2], out[4*x+3] = a, b, e, 255
		}
	}
	return img
}

// toCMYK converts four planes to image.CMYK, undoing Adobe's inversion and, for YCCK, the
// YCbCr transform of the first three.
func (d *jpegDecoder) toCMYK(r image.Rectangle, ycck bool) *image.CMYK {
	img := image.NewCMYK(r)
	w, h := r.Dx(), r.Dy()
	var xs, ys [4][]int
	for i := 0; i < 4; i++ {
		xs[i], ys[i] = d.geo.sampleIndex(i, w, true), d.geo.sampleIndex(i, h, false)
	}
	c := &d.comps
	for y := 0; y < h; y++ {
		var rows [4][]byte
		for i := range rows {
			rows[i] = c[i].pix[ys[i][y]*c[i].stride:]
		}
		out := img.Pix[y*img.Stride : y*img.Stride+4*w]
		for x := 0; x < w; x++ {
			a, b, e, k := rows[0][xs[0][x]], rows[1][xs[1][x]], rows[2][xs[2][x]], rows[3][xs[3][x]]
			if ycck {
				// Undoing the transform gives C, M and Y as ink amounts already (what
				// image/jpeg and ImageMagick read); flip them so the line below restores them.
				a, b, e = color.YCbCrToRGB(a, b, e)
				a, b, e = 255-a, 255-b, 255-e
			}
			out[4*x], out[4*x+1], out[4*x+2], out[4*x+3] = 255-a, 255-b, 255-e, 255-k
		}
	}
	return img
}
