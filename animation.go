// animation.go turns an animated GIF or WebP source into an animated WebP variant.
package main

import (
	"bytes"
	"context"
	"fmt"
	"image"

	"github.com/gen2brain/webp"
)

// transformAnimation decodes every frame of an animated source fully composited,
// resizes each the same way and muxes them into an animated WebP that keeps the frame
// delays and the loop count. checkLimits has already bounded frames × width × height.
func transformAnimation(ctx context.Context, src []byte, info *sourceInfo, opt imageOptions) (
	[]byte, string, error) {
	frames, delays, err := decodeAllFrames(src, info)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s frames: %w", errBadImage, info.format, err)
	}

	var enc []webpAnimFrame
	var w, h int
	for i, f := range frames {
		res, err := renderFrame(ctx, f, info, opt)
		if err != nil {
			return nil, "", err
		}
		w, h = res.Rect.Dx(), res.Rect.Dy()
		ef, err := encodeAnimFrame(res, opt)
		if err != nil {
			return nil, "", err
		}
		ef.duration = delays[i]
		enc = append(enc, ef)
	}
	return muxWebPAnimation(w, h, info.loop, enc), "webp", nil
}

// decodeAllFrames returns each frame as it appears on the full canvas, with its delay
// in milliseconds.
func decodeAllFrames(src []byte, info *sourceInfo) ([]image.Image, []int, error) {
	if info.format == "gif" {
		fs, delays, err := decodeGIFFrames(src, info.gif, info.frames)
		if err != nil {
			return nil, nil, err
		}
		out := make([]image.Image, len(fs))
		for i, f := range fs {
			out[i] = f
		}
		return out, delays, nil
	}
	webpInit()
	all, err := webp.DecodeAll(bytes.NewReader(src))
	if err != nil {
		return nil, nil, err
	}
	// Frames come back composited on the canvas as premultiplied RGBA.
	out := make([]image.Image, len(all.Image))
	delays := make([]int, len(all.Image))
	for i, f := range all.Image {
		out[i] = f
		if i < len(all.Delay) {
			delays[i] = all.Delay[i]
		}
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("no frames")
	}
	return out, delays, nil
}

// encodeAnimFrame encodes one frame as a still WebP and keeps its image chunks.
func encodeAnimFrame(img *image.RGBA, opt imageOptions) (webpAnimFrame, error) {
	var buf bytes.Buffer
	if err := encodeWebP(&buf, img, opt); err != nil {
		return webpAnimFrame{}, fmt.Errorf("encode webp frame: %w", err)
	}
	data, alpha, err := webpFrameData(buf.Bytes())
	if err != nil {
		return webpAnimFrame{}, err
	}
	return webpAnimFrame{data: data, alpha: alpha}, nil
}
