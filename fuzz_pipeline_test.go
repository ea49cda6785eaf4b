// fuzz_pipeline_test.go fuzzes decode→resize→encode with arbitrary bytes and
// options: no panic, only the pipeline's errors, and every output decodes at a
// size the options allow.
package main

import (
	"bytes"
	"context"
	"errors"
	"image"
	"os"
	"path/filepath"
	"testing"
)

var fuzzFormats = []string{"jpeg", "png", "webp", "auto-noalpha", ""}

func FuzzTransformOptions(f *testing.F) {
	files, _ := filepath.Glob("testdata/cases/*/*")
	for i, name := range files {
		if b, err := os.ReadFile(name); err == nil && len(b) < 8<<10 {
			f.Add(b, uint8(i*7), uint8(i*3), uint8(i), uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, src []byte, w, h, fit, pick uint8) {
		opt := imageOptions{
			Width: int(w % 65), Height: int(h % 65), Quality: 50,
			Format:          fuzzFormats[int(pick)%len(fuzzFormats)],
			MaxSourcePixels: 1 << 20, MaxAnimationPixels: 1 << 21,
		}
		if fit%2 == 1 {
			opt.Fit, opt.Gravity = "fill", []string{"center", "top", "left"}[int(fit/2)%3]
		}
		out, format, err := transformImage(context.Background(), src, opt)
		if err != nil {
			if errors.Is(err, errImagePanic) {
				t.Fatalf("transformImage panicked: %v", err)
			}
			if !errors.Is(err, errBadImage) && !errors.Is(err, errNotImage) &&
				!errors.Is(err, errSourceTooLarge) && !errors.Is(err, errAnimationTooLarge) {
				t.Fatalf("transformImage error = %v, want a pipeline error", err)
			}
			return
		}
		checkOutput(t, out, format, opt)
	})
}

// checkOutput fails unless out is a decodable image of format whose size fits opt.
func checkOutput(t *testing.T, out []byte, format string, opt imageOptions) {
	t.Helper()
	if got := sniffFormat(out); got != format {
		t.Fatalf("output sniffs as %q, transformImage said %q", got, format)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("output %s does not decode: %v", format, err)
	}
	w, h := cfg.Width, cfg.Height
	switch {
	case w < 1 || h < 1:
		t.Fatalf("output is %dx%d", w, h)
	case opt.Fit == "fill" && opt.Width > 0 && opt.Height > 0 &&
		(w != opt.Width || h != opt.Height):
		t.Fatalf("fill output = %dx%d, want %dx%d", w, h, opt.Width, opt.Height)
	case opt.Fit != "fill" && opt.Width > 0 && w > opt.Width,
		opt.Fit != "fill" && opt.Height > 0 && h > opt.Height:
		t.Fatalf("output = %dx%d, over the %dx%d box", w, h, opt.Width, opt.Height)
	}
}
