// cleaner_walk.go rebuilds the cleaner's index by walking the cache directory.
package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"
)

// leftoverKind says why the walk kept a path that is not a cache entry.
type leftoverKind uint8

const (
	leftoverTemp     leftoverKind = iota // a .tmp-* file: in progress, or a crash's
	leftoverOrphan                       // a sidecar without its data file
	leftoverEmptyDir                     // a directory with nothing in it
)

// leftover is a path the walk found that may need removing once it is older
// than the grace period; passes revisit it until it is gone.
type leftover struct {
	rel  string
	kind leftoverKind
}

// walkFile is a data file found by the walk.
type walkFile struct {
	name  string
	size  int64
	atime int64
}

// walkTotals counts what a walk found, for its log line.
type walkTotals struct {
	dirs, files, leftovers int
	bytes                  int64
}

// walk indexes every cache entry under the cache directory with the time
// of its last access as the filesystem knows it (atime when newer than
// mtime), keeping what Touch recorded meanwhile, and notes the leftovers
// for the next pass. A missing cache directory is an empty cache.
func (c *Cleaner) walk(ctx context.Context) error {
	if c.root == "" {
		return errNoCacheDir
	}
	start := time.Now()
	var t walkTotals
	err := c.walkDir(ctx, "", &t)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}

	c.mu.Lock()
	c.stats.Indexed = err == nil
	c.mu.Unlock()
	c.log.Info("cache index walked", "dir", c.root, "dirs", t.dirs, "files", t.files,
		"bytes", t.bytes, "leftovers", t.leftovers, "duration", time.Since(start))
	return err
}

// walkDir indexes one directory, then descends. Only the root's errors and
// the context's end stop the walk; an unreadable subdirectory is skipped.
func (c *Cleaner) walkDir(ctx context.Context, rel string, t *walkTotals) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	des, err := os.ReadDir(c.join(rel))
	if err != nil {
		if rel == "" {
			return err
		}
		c.log.Debug("cache walk skips a directory", "dir", rel, "err", err)
		return nil
	}
	t.dirs++
	if len(des) == 0 && rel != "" {
		c.addLeftovers([]leftover{{rel, leftoverEmptyDir}}, t)
		return nil
	}

	files, subdirs := c.scanDir(rel, des, t)
	c.index(rel, files)

	for _, d := range subdirs {
		if err := c.walkDir(ctx, joinRel(rel, d), t); err != nil {
			return err
		}
	}
	return nil
}

// scanDir sorts one directory's entries into data files (with their
// sidecars' sizes added), subdirectories and leftovers. des is sorted by
// name, so files is too.
func (c *Cleaner) scanDir(rel string, des []fs.DirEntry, t *walkTotals) (
	files []walkFile, subdirs []string) {
	var sidecars []walkFile
	var lo []leftover
	for _, de := range des {
		name := de.Name()
		switch {
		case de.IsDir():
			subdirs = append(subdirs, name)
		case !de.Type().IsRegular():
			// Symlinks and devices are not Katana's; leave them alone.
		case strings.HasPrefix(name, tempFilePrefix):
			lo = append(lo, leftover{joinRel(rel, name), leftoverTemp})
		case strings.HasSuffix(name, sidecarSuffix):
			if f, ok := fileOf(de); ok {
				sidecars = append(sidecars, f)
			}
		case c.protect[c.join(joinRel(rel, name))]:
		default:
			if f, ok := fileOf(de); ok {
				files = append(files, f)
			}
		}
	}

	for _, s := range sidecars {
		data := strings.TrimSuffix(s.name, sidecarSuffix)
		i, ok := slices.BinarySearchFunc(files, data, func(f walkFile, n string) int {
			return strings.Compare(f.name, n)
		})
		if !ok {
			lo = append(lo, leftover{joinRel(rel, s.name), leftoverOrphan})
			continue
		}
		files[i].size += s.size
	}
	for _, f := range files {
		t.bytes += f.size
	}
	t.files += len(files)
	c.addLeftovers(lo, t)
	return files, subdirs
}

// index adds a directory's files to the index, keeping what Touch recorded.
// It takes the lock for a chunk at a time so that Touch never waits long.
func (c *Cleaner) index(rel string, files []walkFile) {
	const chunk = 1024
	for len(files) > 0 {
		n := min(len(files), chunk)
		c.mu.Lock()
		for _, f := range files[:n] {
			c.idx.put(joinRel(rel, f.name), f.size, f.atime, true)
		}
		c.mu.Unlock()
		files = files[n:]
	}
}

// fileOf stats a directory entry; one that vanished meanwhile is skipped.
func fileOf(de fs.DirEntry) (walkFile, bool) {
	fi, err := de.Info()
	if err != nil {
		return walkFile{}, false
	}
	at := fileAccessTime(fi)
	if mt := fi.ModTime(); mt.After(at) {
		at = mt
	}
	return walkFile{name: de.Name(), size: fi.Size(), atime: at.UnixNano()}, true
}

func (c *Cleaner) addLeftovers(lo []leftover, t *walkTotals) {
	if len(lo) == 0 {
		return
	}
	t.leftovers += len(lo)
	c.mu.Lock()
	c.leftovers = append(c.leftovers, lo...)
	c.mu.Unlock()
}

// join makes a relative path absolute under the cache directory.
func (c *Cleaner) join(rel string) string {
	if rel == "" {
		return c.root
	}
	return c.prefix + rel
}

// joinRel joins a relative directory ("" for the root) and a name.
func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + string(os.PathSeparator) + name
}
