// fuzz_test.go fuzzes transformImage from the case files: no input may panic or fail
// with anything but the pipeline's errors.
package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzTransform(f *testing.F) {
	files, _ := filepath.Glob("testdata/cases/*/*")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil && len(b) < 8<<10 {
			f.Add(b)
		}
	}
	opt := imageOptions{Width: 8, Format: "png", MaxSourcePixels: 1 << 20,
		MaxAnimationPixels: 1 << 20}
	f.Fuzz(func(t *testing.T, src []byte) {
		_, _, err := transformImage(context.Background(), src, opt)
		if err == nil {
			return
		}
		if strings.Contains(err.Error(), "panic") {
			t.Fatalf("transformImage panicked: %v", err)
		}
		if !errors.Is(err, errBadImage) && !errors.Is(err, errNotImage) &&
			!errors.Is(err, errSourceTooLarge) && !errors.Is(err, errAnimationTooLarge) {
			t.Fatalf("transformImage error = %v, want a pipeline error", err)
		}
	})
}
