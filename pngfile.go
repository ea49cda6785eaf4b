// pngfile.go reads PNG chunks: size, eXIf, iCCP, and drops damaged optional chunks.
package main

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
)

// pngChunk is one chunk of a PNG file; raw is the whole chunk, length to CRC.
type pngChunk struct {
	typ  string
	data []byte
	raw  []byte
}

// crcOK reports whether the chunk's stored CRC matches its type and data.
func (c pngChunk) crcOK() bool {
	n := len(c.raw)
	return crc32.ChecksumIEEE(c.raw[4:n-4]) == binary.BigEndian.Uint32(c.raw[n-4:])
}

// ancillary reports whether the chunk is optional (lowercase first letter).
func (c pngChunk) ancillary() bool { return c.typ[0]&0x20 != 0 }

// pngChunks splits a PNG after its signature. It stops at IEND or at the first chunk
// that runs past the end of b.
func pngChunks(b []byte) []pngChunk {
	var cs []pngChunk
	for i := 8; i+12 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[i:]))
		if n < 0 || n > len(b)-i-12 {
			break
		}
		c := pngChunk{typ: string(b[i+4 : i+8]), data: b[i+8 : i+8+n], raw: b[i : i+12+n]}
		cs = append(cs, c)
		i += 12 + n
		if c.typ == "IEND" {
			break
		}
	}
	return cs
}

// probePNG reads the IHDR size and, from chunks with a good CRC, eXIf and iCCP.
func probePNG(src []byte, info *sourceInfo) error {
	cs := pngChunks(src)
	if len(cs) == 0 || cs[0].typ != "IHDR" || len(cs[0].data) < 13 {
		return errors.New("no IHDR chunk")
	}
	w := binary.BigEndian.Uint32(cs[0].data)
	h := binary.BigEndian.Uint32(cs[0].data[4:])
	if w > 1<<30 || h > 1<<30 {
		return errors.New("IHDR size out of range")
	}
	info.width, info.height = int(w), int(h)
	for _, c := range cs {
		if !c.crcOK() {
			continue
		}
		switch c.typ {
		case "eXIf":
			info.orientation = exifOrientation(c.data)
		case "iCCP":
			info.profile = parseICC(inflateICCP(c.data))
		}
	}
	return nil
}

// inflateICCP returns the profile of an iCCP chunk (name, NUL, method 0, zlib data),
// or nil when it is malformed or inflates past 4 MiB.
func inflateICCP(d []byte) []byte {
	i := bytes.IndexByte(d, 0)
	if i < 1 || i+2 > len(d) || d[i+1] != 0 {
		return nil
	}
	r, err := zlib.NewReader(bytes.NewReader(d[i+2:]))
	if err != nil {
		return nil
	}
	defer r.Close()
	p, err := io.ReadAll(io.LimitReader(r, 4<<20))
	if err != nil {
		return nil
	}
	return p
}

// dropBadAncillary returns src without the optional chunks whose CRC is wrong, as
// browsers skip them; image/png refuses a bad CRC on any chunk. Critical chunks are left
// for the decoder to judge. src is returned as is when nothing needs dropping.
func dropBadAncillary(src []byte) []byte {
	cs := pngChunks(src)
	bad := false
	for _, c := range cs {
		if c.ancillary() && !c.crcOK() {
			bad = true
			break
		}
	}
	if !bad {
		return src
	}
	out := append([]byte(nil), src[:8]...)
	end := 8
	for _, c := range cs {
		end += len(c.raw)
		if c.ancillary() && !c.crcOK() {
			continue
		}
		out = append(out, c.raw...)
	}
	return append(out, src[end:]...)
}
