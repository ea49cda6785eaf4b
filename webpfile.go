// webpfile.go reads and writes the WebP RIFF container: headers, metadata, animation.
package main

import (
	"encoding/binary"
	"errors"
	"sync"

	"github.com/gen2brain/webp"
)

// webpInit compiles the WASM codec once, on first use. The handler may call it at
// startup so that the first request does not pay for it.
var webpInit = sync.OnceFunc(webp.Init)

// riffChunk is one chunk of a RIFF file; raw is header, data and padding.
type riffChunk struct {
	id   string
	data []byte
	raw  []byte
}

// webpChunks splits the chunks after the "RIFF....WEBP" header, stopping at the first
// one that runs past the end.
func webpChunks(b []byte) []riffChunk {
	var cs []riffChunk
	for i := 12; i+8 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[i+4:]))
		if n < 0 || n > len(b)-i-8 {
			break
		}
		end := min(i+8+n+n&1, len(b))
		cs = append(cs, riffChunk{id: string(b[i : i+4]), data: b[i+8 : i+8+n], raw: b[i:end]})
		i = end
	}
	return cs
}

// probeWebP reads the canvas size, frame and loop counts, EXIF and ICCP chunks.
func probeWebP(src []byte, info *sourceInfo) error {
	cs := webpChunks(src)
	if len(cs) == 0 {
		return errors.New("no chunks")
	}
	w, h, err := webpSize(cs[0])
	if err != nil {
		return err
	}
	info.width, info.height = w, h
	frames := 0
	for _, c := range cs[1:] {
		switch c.id {
		case "ANIM":
			if len(c.data) >= 6 {
				info.loop = int(binary.LittleEndian.Uint16(c.data[4:]))
			}
		case "ANMF":
			frames++
		case "EXIF":
			info.orientation = exifOrientation(c.data)
		case "ICCP":
			info.profile = parseICC(c.data)
		}
	}
	info.frames = max(frames, 1)
	return nil
}

// webpSize reads the canvas size from the first chunk: VP8X, VP8 or VP8L.
func webpSize(c riffChunk) (int, int, error) {
	d := c.data
	switch c.id {
	case "VP8X":
		if len(d) >= 10 {
			return int(le24(d[4:])) + 1, int(le24(d[7:])) + 1, nil
		}
	case "VP8 ":
		if len(d) >= 10 && d[3] == 0x9d && d[4] == 0x01 && d[5] == 0x2a {
			w := binary.LittleEndian.Uint16(d[6:]) & 0x3fff
			h := binary.LittleEndian.Uint16(d[8:]) & 0x3fff
			return int(w), int(h), nil
		}
	case "VP8L":
		if len(d) >= 5 && d[0] == 0x2f {
			v := binary.LittleEndian.Uint32(d[1:])
			return int(v&0x3fff) + 1, int(v>>14&0x3fff) + 1, nil
		}
	}
	return 0, 0, errors.New("bad first chunk " + c.id)
}

// le24 reads a little-endian 24-bit number.
func le24(b []byte) uint32 { return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 }

// putLE24 writes v as a little-endian 24-bit number.
func putLE24(b []byte, v int) {
	b[0], b[1], b[2] = byte(v), byte(v>>8), byte(v>>16)
}

// webpFrameData returns the image chunks of a still WebP file (ALPH and VP8, or VP8L),
// ready to go inside an ANMF chunk, and whether they carry alpha.
func webpFrameData(file []byte) (data []byte, alpha bool, err error) {
	for _, c := range webpChunks(file) {
		switch c.id {
		case "ALPH":
			alpha = true
			data = append(data, c.raw...)
		case "VP8 ":
			data = append(data, c.raw...)
		case "VP8L":
			// Bit 28 of the VP8L header is alpha_is_used.
			alpha = alpha || len(c.data) >= 5 && c.data[4]&0x10 != 0
			data = append(data, c.raw...)
		}
	}
	if data == nil {
		return nil, false, errors.New("encoder wrote no image chunk")
	}
	return data, alpha, nil
}

// webpAnimFrame is one encoded frame covering the whole canvas.
type webpAnimFrame struct {
	data     []byte // ALPH+VP8 or VP8L chunks
	alpha    bool
	duration int // milliseconds
}

// muxWebPAnimation writes an animated WebP (VP8X, ANIM, one ANMF per frame) of a w×h
// canvas. Every frame covers the canvas and replaces it (no blending, no disposal), so
// players need no compositing. loop is 0 for forever or the number of plays.
func muxWebPAnimation(w, h, loop int, frames []webpAnimFrame) []byte {
	flags := byte(0x02) // animation
	for _, f := range frames {
		if f.alpha {
			flags |= 0x10
		}
	}
	out := []byte("RIFF\x00\x00\x00\x00WEBP")
	vp8x := make([]byte, 10)
	vp8x[0] = flags
	putLE24(vp8x[4:], w-1)
	putLE24(vp8x[7:], h-1)
	out = appendChunk(out, "VP8X", vp8x)
	anim := make([]byte, 6) // background transparent black, then loop count
	binary.LittleEndian.PutUint16(anim[4:], uint16(loop))
	out = appendChunk(out, "ANIM", anim)
	for _, f := range frames {
		hdr := make([]byte, 16, 16+len(f.data))
		putLE24(hdr[6:], w-1)
		putLE24(hdr[9:], h-1)
		putLE24(hdr[12:], min(max(f.duration, 0), 0xffffff))
		hdr[15] = 0x02 // do not blend; X, Y offsets and disposal stay 0
		out = appendChunk(out, "ANMF", append(hdr, f.data...))
	}
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
	return out
}

// appendChunk appends a RIFF chunk with its padding byte when the size is odd.
func appendChunk(b []byte, id string, data []byte) []byte {
	b = append(b, id...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	if len(data)%2 == 1 {
		b = append(b, 0)
	}
	return b
}
