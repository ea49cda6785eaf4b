// giffile.go walks GIF blocks without decoding and composites GIF frames as browsers do.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/draw"
	"image/gif"
)

// gifLayout is the block structure of a GIF: its logical screen, where each frame's
// data ends, and the union of the screen and every frame rectangle.
type gifLayout struct {
	screen   image.Rectangle
	canvas   image.Rectangle // screen grown to hold frames that stick out of it
	frameEnd []int           // offset just past each frame's image data
	loop     int             // NETSCAPE loop count; -1 when absent
}

// walkGIF reads the block structure of a GIF. Truncated input ends the walk at the
// last complete frame instead of failing.
func walkGIF(b []byte) (*gifLayout, error) {
	if len(b) < 13 {
		return nil, errors.New("short header")
	}
	w, h := int(binary.LittleEndian.Uint16(b[6:])), int(binary.LittleEndian.Uint16(b[8:]))
	l := &gifLayout{screen: image.Rect(0, 0, w, h), loop: -1}
	l.canvas = l.screen
	i := 13 + colorTableSize(b[10])
	for i < len(b) {
		switch b[i] {
		case 0x21:
			if i+2 > len(b) {
				return l, nil
			}
			if b[i+1] == 0xff {
				l.readLoop(b[i+2:])
			}
			i = skipSubBlocks(b, i+2)
		case 0x2c:
			if i+10 > len(b) {
				return l, nil
			}
			d := b[i+1:]
			x, y := int(binary.LittleEndian.Uint16(d)), int(binary.LittleEndian.Uint16(d[2:]))
			fw, fh := int(binary.LittleEndian.Uint16(d[4:])), int(binary.LittleEndian.Uint16(d[6:]))
			i = skipSubBlocks(b, i+10+colorTableSize(d[8])+1)
			if i > len(b) {
				return l, nil
			}
			l.canvas = l.canvas.Union(image.Rect(x, y, x+fw, y+fh))
			l.frameEnd = append(l.frameEnd, i)
		default:
			// The trailer, or garbage after the last frame: browsers stop here.
			return l, nil
		}
	}
	return l, nil
}

// readLoop takes the loop count from a NETSCAPE2.0 application extension.
func (l *gifLayout) readLoop(d []byte) {
	if len(d) >= 16 && d[0] == 11 && string(d[1:12]) == "NETSCAPE2.0" && d[12] == 3 &&
		d[13] == 1 {
		l.loop = int(binary.LittleEndian.Uint16(d[14:]))
	}
}

// colorTableSize is the byte size of the colour table a packed field announces.
func colorTableSize(packed byte) int {
	if packed&0x80 == 0 {
		return 0
	}
	return 3 << (packed&7 + 1)
}

// skipSubBlocks returns the offset after the sub-block chain starting at i; past
// len(b) when the chain is truncated.
func skipSubBlocks(b []byte, i int) int {
	for i < len(b) {
		n := int(b[i])
		i += 1 + n
		if n == 0 {
			return i
		}
	}
	return len(b) + 1
}

// webpLoop maps a GIF loop count to WebP's: Go and browsers play a GIF n+1 times for
// NETSCAPE count n, once without the extension, forever for 0.
func (l *gifLayout) webpLoop() int {
	switch {
	case l.loop < 0:
		return 1
	case l.loop == 0:
		return 0
	}
	return min(l.loop+1, 0xffff)
}

// probeGIF reads the canvas, frame count and loop count from the GIF blocks.
func probeGIF(src []byte, info *sourceInfo) error {
	l, err := walkGIF(src)
	if err != nil {
		return err
	}
	if len(l.frameEnd) == 0 {
		return errors.New("no frames")
	}
	info.gif = l
	info.width, info.height = l.canvas.Dx(), l.canvas.Dy()
	info.frames = len(l.frameEnd)
	info.loop = l.webpLoop()
	return nil
}

// gifPrefix returns the GIF cut after its first n frames, with a trailer, and with the
// logical screen grown to the canvas so image/gif accepts frames larger than it.
func gifPrefix(src []byte, l *gifLayout, n int) []byte {
	b := append([]byte(nil), src[:l.frameEnd[n-1]]...)
	b = append(b, 0x3b)
	binary.LittleEndian.PutUint16(b[6:], uint16(min(l.canvas.Max.X, 0xffff)))
	binary.LittleEndian.PutUint16(b[8:], uint16(min(l.canvas.Max.Y, 0xffff)))
	return b
}

// decodeGIFFrames decodes the first n frames and composites each onto the canvas as
// browsers show it (transparency, then disposal). Frames whose LZW data ends before
// their last pixel are dropped from the end, as decoding stops there; a GIF whose first
// frame is short shows as a fully transparent canvas, as in browsers that got no pixels.
// (walkGIF has already left out a frame cut off inside its data blocks.)
// BUG: the rows a short or cut-off frame does hold are lost rather than shown, as
// browsers would; image/gif returns nothing for such a frame, and keeping them needs a
// GIF frame decoder of our own (compress/lzw makes that about 80 lines).
func decodeGIFFrames(src []byte, l *gifLayout, n int) ([]*image.RGBA, []int, error) {
	for ; n > 0; n-- {
		g, err := gif.DecodeAll(bytes.NewReader(gifPrefix(src, l, n)))
		if isShortGIF(err) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		return compositeGIF(g, l.canvas), delaysMS(g.Delay), nil
	}
	return []*image.RGBA{image.NewRGBA(l.canvas)}, []int{0}, nil
}

// compositeGIF plays the frames of g onto a transparent canvas and snapshots each.
// Disposal to background clears to transparent, as browsers do.
func compositeGIF(g *gif.GIF, canvas image.Rectangle) []*image.RGBA {
	cur := image.NewRGBA(canvas)
	out := make([]*image.RGBA, 0, len(g.Image))
	for i, f := range g.Image {
		var prev *image.RGBA
		disposal := byte(0)
		if i < len(g.Disposal) {
			disposal = g.Disposal[i]
		}
		if disposal == gif.DisposalPrevious {
			prev = cloneRGBA(cur)
		}
		draw.Draw(cur, f.Rect, f, f.Rect.Min, draw.Over)
		out = append(out, cloneRGBA(cur))
		switch disposal {
		case gif.DisposalBackground:
			draw.Draw(cur, f.Rect, image.Transparent, image.Point{}, draw.Src)
		case gif.DisposalPrevious:
			cur = prev
		}
	}
	return out
}

// cloneRGBA returns a copy of m with its own pixels.
func cloneRGBA(m *image.RGBA) *image.RGBA {
	c := *m
	c.Pix = append([]byte(nil), m.Pix...)
	return &c
}

// delaysMS turns GIF delays (hundredths of a second) into milliseconds.
func delaysMS(d []int) []int {
	out := make([]int, len(d))
	for i, v := range d {
		out[i] = 10 * v
	}
	return out
}

// decodeGIFFirst returns the composited first frame.
func decodeGIFFirst(src []byte, info *sourceInfo) (image.Image, error) {
	frames, _, err := decodeGIFFrames(src, info.gif, 1)
	if err != nil {
		return nil, err
	}
	return frames[0], nil
}
