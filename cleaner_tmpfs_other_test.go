//go:build !linux

// cleaner_tmpfs_other_test.go skips the tmpfs variant where tmpfs cannot be mounted.
package main

import "testing"

// mountTmpfs skips: tmpfs mounts are a Linux feature.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	t.Skip("tmpfs needs Linux")
	return ""
}
