// statfs_linux.go asks Linux how full a filesystem is and when a file was last read.
package main

import (
	"io/fs"
	"syscall"
	"time"
)

// sysStatfs reports the block and inode counts of the filesystem holding dir.
func sysStatfs(dir string) (fsUsage, error) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		return fsUsage{}, err
	}
	return fsUsage{
		Blocks:      s.Blocks,
		BlocksFree:  s.Bfree,
		BlocksAvail: s.Bavail,
		Files:       s.Files,
		FilesFree:   s.Ffree,
		BlockSize:   int64(s.Bsize), // int32 on 32-bit Linux
	}, nil
}

// fileAccessTime is the file's atime when the OS reports one, else its mtime.
func fileAccessTime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Atim.Unix())
	}
	return fi.ModTime()
}
