// guard.go keeps hostile input from doing harm: non-image origin bodies under image
// routes, panics in the image pipeline, cache write failures, unescaped headers.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"runtime/debug"
	"strings"
)

// checkImageBody refuses a stored or buffered origin body whose first bytes
// sniffFormat does not recognise, with errNotImage (415).
func checkImageBody(r io.ReaderAt, originPath string) error {
	head := make([]byte, 16)
	n, _ := r.ReadAt(head, 0)
	if sniffFormat(head[:n]) == "" {
		return fmt.Errorf("%w: origin body of %s is not a JPEG, PNG, GIF or WebP",
			errNotImage, originPath)
	}
	return nil
}

// errImagePanic marks a panic recovered in a decoder or encoder; it always comes
// wrapped with errBadImage (502), so the input is never stored as a good variant.
var errImagePanic = errors.New("image pipeline panicked")

// transformFunc is the image pipeline the handler runs; tests replace it to
// make it panic or block.
var transformFunc = transformImage

// guardedTransform runs the pipeline on the source at rel, turning a panic into
// errBadImage and logging it, with rel, at Error.
func (s *server) guardedTransform(ctx context.Context, data []byte, opt imageOptions,
	rel string) (out []byte, format string, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, format = nil, ""
			err = fmt.Errorf("%w: %w: %v", errBadImage, errImagePanic, p)
		}
		if errors.Is(err, errImagePanic) {
			s.log.Error("image pipeline panicked", "cache_path", rel, "err", err,
				"stack", string(debug.Stack()))
		}
	}()
	return s.transform(ctx, data, opt)
}

// errWriter remembers the first error of the writer it wraps, so that a copy
// can tell a full disk (the cache's fault, 503) from a failed origin (502).
type errWriter struct {
	w   io.Writer
	err error
}

func (w *errWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// localSinkError turns an origin fetch that failed writing into the cache into
// a storage error (503); other errors are returned as they are.
func localSinkError(err error) error {
	var se *sinkError
	if errors.As(err, &se) {
		return storageError(err)
	}
	return err
}

// accelURI is the X-Accel-Redirect value for a cache path: the configured
// prefix as it is, then each segment percent-encoded. nginx (since 1.5.9)
// takes the value as an escaped URI: a raw "?" in a cache path would start a
// query and point it at another file, a raw "%" would start an escape.
func accelURI(prefix, rel string) string {
	segs := strings.Split(rel, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return path.Join(prefix, strings.Join(segs, "/"))
}
