//go:build !linux && !darwin

// statfs_other.go stands in for statfs on systems where Katana does not read it.
package main

import (
	"io/fs"
	"time"
)

// sysStatfs is not implemented here, so only cache_max_bytes can trigger
// cleaning.
// TODO: Windows has GetDiskFreeSpaceExW (and the BSDs their own Statfs_t
// layouts); wire them in when Katana is deployed there.
func sysStatfs(dir string) (fsUsage, error) {
	return fsUsage{}, errStatfsUnsupported
}

// fileAccessTime falls back to the modification time.
func fileAccessTime(fi fs.FileInfo) time.Time { return fi.ModTime() }
