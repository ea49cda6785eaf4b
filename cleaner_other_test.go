//go:build !linux

// cleaner_other_test.go stands in for the Linux-only test helpers elsewhere.
package main

import (
	"testing"
	"time"
)

// mountTmpfs skips: tmpfs mounts are a Linux feature.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	t.Skip("tmpfs needs Linux")
	return ""
}

// cpuTime is not measured here.
func cpuTime() (user, sys time.Duration) { return 0, 0 }
