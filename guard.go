// guard.go keeps what a hostile origin sends out of image routes: a body that is
// not a JPEG, PNG, GIF or WebP is never stored or served under one.
package main

import (
	"fmt"
	"io"
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
