// stub_pipeline.go is a stand-in for resize.go and encode.go while they are being written.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/gif"
	"image/jpeg"
	"image/png"

	"github.com/gen2brain/webp"
	xdraw "golang.org/x/image/draw"
)

var (
	errSourceTooLarge    = errors.New("source image too large")
	errNotImage          = errors.New("not an image")
	errBadImage          = errors.New("image could not be decoded")
	errAnimationTooLarge = errors.New("animation too large")
)

type imageOptions struct {
	Width, Height      int
	Fit                string
	Gravity            string
	Quality            int
	Format             string
	Lossless           bool
	Background         color.NRGBA
	WebPMethod         int
	MaxSourcePixels    int64
	MaxAnimationPixels int64
}

func sniffFormat(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\xff\xd8\xff")):
		return "jpeg"
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(b, []byte("GIF8")):
		return "gif"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "webp"
	}
	return ""
}

func transformImage(ctx context.Context, src []byte, opt imageOptions) ([]byte, string, error) {
	if sniffFormat(src) == "" {
		return nil, "", errNotImage
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(src))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", errBadImage, err)
	}
	if int64(cfg.Width)*int64(cfg.Height) > opt.MaxSourcePixels {
		return nil, "", errSourceTooLarge
	}
	img, _, err := image.Decode(bytes.NewReader(src))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", errBadImage, err)
	}
	b := img.Bounds()
	w, h := opt.Width, opt.Height
	if w == 0 && h == 0 {
		w, h = b.Dx(), b.Dy()
	} else if w == 0 {
		w = max(1, (b.Dx()*h+b.Dy()/2)/b.Dy())
	} else if h == 0 {
		h = max(1, (b.Dy()*w+b.Dx()/2)/b.Dx())
	}
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	xdraw.ApproxBiLinear.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
	var out bytes.Buffer
	format := opt.Format
	switch format {
	case "png":
		err = png.Encode(&out, dst)
	case "webp":
		err = webp.Encode(&out, dst, webp.Options{Quality: opt.Quality, Method: opt.WebPMethod})
	default:
		format = "jpeg"
		err = jpeg.Encode(&out, dst, &jpeg.Options{Quality: opt.Quality})
	}
	return out.Bytes(), format, err
}
