// cleaner_pass.go runs one cleaning pass: measure, then delete the least recently used.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// passStats reports one cleaning pass.
type passStats struct {
	Entries     int     // files indexed when the pass started
	Bytes       int64   // their bytes, data plus sidecar
	UsageBefore float64 // max(block, inode) percent; -1 when unknown
	UsageAfter  float64 // the same once the pass ended
	Deleted     int     // cache entries deleted
	FreedBytes  int64   // their bytes
	Missing     int     // indexed entries that were already gone
	Leftovers   int     // stale temp files, orphan sidecars and empty dirs removed
	Skipped     int     // candidates kept: acquired, touched again or failing
	Exhausted   bool    // still over a limit with nothing left to delete
	Duration    time.Duration
}

// candidate is an entry a pass took out of the heap to delete. atime tells
// whether it was touched again since.
type candidate struct {
	rel   string
	atime int64
}

// Pass runs one cleaning pass now: it removes stale leftovers, then, when
// usage is over MaxUsage (or Katana's bytes over MaxBytes), deletes the
// least recently used entries in batches until usage is under LowWater
// (and the bytes under 95% of MaxBytes). Passes run one at a time. It logs
// once, at Info (Warn when the limits could not be met).
func (c *Cleaner) Pass(ctx context.Context) (passStats, error) {
	if c.root == "" {
		return passStats{}, errNoCacheDir
	}
	c.passMu.Lock()
	defer c.passMu.Unlock()
	start := time.Now()

	var st passStats
	c.mu.Lock()
	st.Entries, st.Bytes = c.idx.len(), c.idx.bytes
	c.mu.Unlock()

	st.Leftovers = c.sweepLeftovers(start)
	err := c.evict(ctx, &st)
	st.Duration = time.Since(start)

	c.mu.Lock()
	c.stats.Passes++
	c.stats.LastPass = time.Now()
	c.stats.LastDuration = st.Duration
	c.mu.Unlock()
	c.logPass(ctx, st)
	return st, err
}

func (c *Cleaner) logPass(ctx context.Context, st passStats) {
	level := slog.LevelInfo
	if st.Exhausted {
		level = slog.LevelWarn
	}
	c.log.Log(ctx, level, "cache clean pass", "dir", c.root,
		"entries", st.Entries, "bytes", st.Bytes,
		"usage_before", st.UsageBefore, "usage_after", st.UsageAfter,
		"deleted", st.Deleted, "freed_bytes", st.FreedBytes, "missing", st.Missing,
		"leftovers", st.Leftovers, "skipped", st.Skipped, "exhausted", st.Exhausted,
		"duration", st.Duration)
}

// evict deletes batches of the least recently used entries while a limit
// that was exceeded at the start is not yet back under its low-water mark.
func (c *Cleaner) evict(ctx context.Context, st *passStats) error {
	u, ferr := c.measure()
	st.UsageBefore, st.UsageAfter = u, u
	fsOn := ferr == nil && c.opt.MaxUsage > 0 && u > c.opt.MaxUsage
	low := c.opt.LowWater
	if c.full.Swap(false) && ferr == nil {
		fsOn, low = true, min(low, u-5) // a write found the disk full
	}
	bytesOn := c.opt.MaxBytes > 0 && c.indexBytes() > c.opt.MaxBytes
	if !fsOn && !bytesOn {
		return c.usageErr(ferr)
	}

	var held []string
	defer func() { c.restore(held) }()
	err := c.evictBatches(ctx, st, fsOn, bytesOn, low, &held)
	if ferr == nil && !fsOn {
		st.UsageAfter, _ = c.measure() // for the log line only
	}
	return cmp.Or(err, c.usageErr(ferr))
}

// evictBatches deletes batch after batch until the limits that are on are
// met, measuring the filesystem again after each batch.
//
// TODO: filesystems that free blocks lazily (XFS, btrfs, ext4 with
// discard) make the next statfs lag and the pass overshoot; subtracting
// the batch's freed blocks from the last measure would avoid that.
func (c *Cleaner) evictBatches(ctx context.Context, st *passStats, fsOn, bytesOn bool,
	low float64, held *[]string) error {
	bytesLow := int64(float64(c.opt.MaxBytes) * bytesLowWater)
	for {
		needFS := fsOn && st.UsageAfter >= low
		needBytes := bytesOn && c.indexBytes() > bytesLow
		if !needFS && !needBytes {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := c.selectBatch(held, st)
		if len(batch) == 0 {
			st.Exhausted = true
			return nil
		}
		for i, cd := range batch {
			if !fsOn && c.indexBytes() <= bytesLow {
				// Only the byte budget matters: stop at the exact file.
				*held = append(*held, relsOf(batch[i:])...)
				break
			}
			c.evictOne(cd, st, held)
		}
		if fsOn {
			u, err := c.measure()
			if err != nil {
				return err
			}
			st.UsageAfter = u
		}
	}
}

// usageErr is the error a failed statfs is worth: none when statfs does not
// matter (MaxUsage off), cannot be had on this system, or found no cache
// directory (nothing to clean yet).
func (c *Cleaner) usageErr(err error) error {
	if err == nil || c.opt.MaxUsage <= 0 || errors.Is(err, errStatfsUnsupported) ||
		errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// measure returns max(block, inode) usage of the cache filesystem, -1 when
// it cannot be measured.
func (c *Cleaner) measure() (float64, error) {
	u, err := c.opt.statfs(c.root)
	if err != nil {
		return -1, fmt.Errorf("cleaner: statfs %s: %w", c.root, err)
	}
	p := u.max()
	c.mu.Lock()
	c.stats.Usage = p
	c.fsBytes = int64(u.Blocks) * u.BlockSize
	c.mu.Unlock()
	return p, nil
}

func (c *Cleaner) indexBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idx.bytes
}

// selectBatch takes up to BatchSize of the oldest entries out of the heap.
// Acquired ones go to held, to return to the heap when the pass ends.
func (c *Cleaner) selectBatch(held *[]string, st *passStats) []candidate {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []candidate
	for len(out) < c.opt.BatchSize {
		rel, at, ok := c.idx.popOldest()
		if !ok {
			break
		}
		if c.busy[rel] > 0 {
			*held = append(*held, rel)
			st.Skipped++
			continue
		}
		out = append(out, candidate{rel, at})
	}
	return out
}

// evictOne deletes a candidate's data file, then its sidecar, unless it was
// acquired, touched or forgotten since it was chosen.
//
// The check and the unlink are not atomic: a reader may open the file in
// between. That is still safe: on Unix the open file streams to the end
// after the unlink, and on Windows the unlink of an open file fails and the
// entry is kept. A reader that opens it after the unlink sees a miss.
func (c *Cleaner) evictOne(cd candidate, st *passStats, held *[]string) {
	if !c.stillCandidate(cd, held) {
		st.Skipped++
		return
	}
	path := c.join(cd.rel)
	err := os.Remove(path)
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		c.log.Debug("cache clean could not delete", "path", path, "err", err)
		*held = append(*held, cd.rel)
		st.Skipped++
		c.mu.Lock()
		c.stats.Failures++
		c.mu.Unlock()
		return
	}
	if err := os.Remove(path + sidecarSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Debug("cache clean could not delete a sidecar", "path", path, "err", err)
	}

	if c.opt.Evicted != nil {
		c.opt.Evicted(filepath.ToSlash(cd.rel))
	}
	size, dirUnused := c.dropIfUnchanged(cd, !missing)
	if missing {
		st.Missing++
	} else {
		st.Deleted++
		st.FreedBytes += size
	}
	if dirUnused {
		// No indexed entry is left there: the directory may be empty.
		dir, _ := splitRel(cd.rel)
		c.removeEmptyDirs(dir)
	}
}

// stillCandidate reports whether cd may be deleted now. An acquired entry
// goes to held.
func (c *Cleaner) stillCandidate(cd candidate, held *[]string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.idx.get(cd.rel)
	if !ok || e.pos >= 0 || e.atime != cd.atime || c.protect[c.join(cd.rel)] {
		return false
	}
	if c.busy[cd.rel] > 0 {
		*held = append(*held, cd.rel)
		return false
	}
	return true
}

// dropIfUnchanged removes cd from the index unless it was stored again
// while its file was being deleted. It returns the size the entry had and
// whether its directory now holds no indexed entry.
func (c *Cleaner) dropIfUnchanged(cd candidate, evicted bool) (size int64, dirUnused bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.idx.get(cd.rel)
	if ok && e.atime == cd.atime {
		c.idx.remove(cd.rel)
		size = e.size
		if evicted {
			c.stats.Evictions++
			c.stats.EvictedBytes += e.size
		}
	}
	dir, _ := splitRel(cd.rel)
	return size, !c.idx.hasDir(dir)
}

// restore returns held entries to the heap.
func (c *Cleaner) restore(held []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rel := range held {
		c.idx.restore(rel)
	}
}

func relsOf(cs []candidate) []string {
	out := make([]string, len(cs))
	for i, cd := range cs {
		out[i] = cd.rel
	}
	return out
}

// removeEmptyDirs removes dir and then its parents while they are empty,
// never the cache directory itself. os.Remove refuses a non-empty one.
//
// BUG: a writer that made dir an instant ago and has not yet created its
// temp file in it loses the race and gets ENOENT; the cache should then
// make the directory again and retry once.
func (c *Cleaner) removeEmptyDirs(dir string) {
	for dir != "" {
		if os.Remove(c.join(dir)) != nil {
			return
		}
		dir, _ = splitRel(dir)
	}
}

// sweepLeftovers removes the walk's leftovers that are older than the grace
// period and keeps the younger ones for a later pass. It returns how many
// it removed.
func (c *Cleaner) sweepLeftovers(now time.Time) int {
	c.mu.Lock()
	lo := c.leftovers
	c.leftovers = nil
	c.mu.Unlock()

	var keep []leftover
	n := 0
	for _, l := range lo {
		removed, again := c.sweepOne(l, now)
		if removed {
			n++
		} else if again {
			keep = append(keep, l)
		}
	}

	c.mu.Lock()
	c.leftovers = append(c.leftovers, keep...)
	c.stats.Leftovers += uint64(n)
	c.mu.Unlock()
	return n
}

// sweepOne removes one leftover if it still is one and is old enough. again
// says to look at it in the next pass.
//
// Orphan sidecars and empty directories get the same grace as temp files: a
// writer may be between its renames, or about to fill a new directory.
func (c *Cleaner) sweepOne(l leftover, now time.Time) (removed, again bool) {
	path := c.join(l.rel)
	fi, err := os.Lstat(path)
	if err != nil || c.protect[path] {
		return false, false
	}
	if now.Sub(fi.ModTime()) < c.opt.TempGrace {
		return false, true
	}
	switch l.kind {
	case leftoverOrphan:
		if _, err := os.Lstat(strings.TrimSuffix(path, sidecarSuffix)); err == nil {
			return false, false // its data file is back
		}
	case leftoverEmptyDir:
		if !fi.IsDir() {
			return false, false
		}
	}
	if err := os.Remove(path); err != nil {
		c.log.Debug("cache clean could not remove a leftover", "path", path, "err", err)
		return false, false
	}
	dir, _ := splitRel(l.rel)
	c.removeEmptyDirs(dir)
	return true, false
}
