// cleaner_index.go holds the cleaner's in-memory LRU index of cached files.
package main

import (
	"hash/maphash"
	"os"
	"strings"
)

// lruIndex records every cached file the cleaner knows of, with its size and
// last access, and yields them least recently used first. Keys are paths
// relative to the cache directory, cleaned, with the OS separator.
//
// Memory is kept small for millions of entries: directory strings are
// interned once (an entry holds a 4-byte directory id and its base name), the
// entries live in one dense slice found through a map keyed by a 64-bit hash
// of (directory, name) rather than by the strings, and the LRU order is a
// binary min-heap of slice positions ordered by access time. The rare key
// whose hash is already taken goes to a small overflow map.
//
// An lruIndex is not safe for concurrent use; the Cleaner guards it with its
// mutex. The zero value is not ready: use newLRUIndex.
type lruIndex struct {
	slots    map[uint64]uint32   // hash of an entry's key -> its place in entries
	overflow map[entryKey]uint32 // keys whose hash another key holds in slots
	seed     maphash.Seed
	mask     uint64 // applied to hashes; tests narrow it to force collisions
	entries  []lruEntry
	heap     []uint32 // positions in entries, a min-heap on atime

	dirs     []dirRec
	dirIDs   map[string]uint32
	freeDirs []uint32

	bytes int64 // sum of all entries' sizes
}

// entryKey identifies an entry: its interned directory and its base name.
type entryKey struct {
	dir  uint32
	name string
}

// lruEntry is one cached file (data plus sidecar). pos is its place in the
// heap, or -1 while a cleaning pass holds it out as a candidate.
type lruEntry struct {
	name  string
	dir   uint32
	pos   int32
	size  int64
	atime int64 // unix nanoseconds of the last access Katana knows of
}

// dirRec is an interned directory (relative, "" for the cache root) and the
// number of entries that use it; an id with no users is recycled.
type dirRec struct {
	path string
	refs int32
}

func newLRUIndex() *lruIndex {
	return &lruIndex{
		slots:    make(map[uint64]uint32),
		overflow: make(map[entryKey]uint32),
		seed:     maphash.MakeSeed(),
		mask:     ^uint64(0),
		dirIDs:   make(map[string]uint32),
	}
}

func (x *lruIndex) hash(k entryKey) uint64 { return maphash.Comparable(x.seed, k) & x.mask }

// find returns the position of the entry with key k.
func (x *lruIndex) find(k entryKey) (uint32, bool) {
	if s, ok := x.slots[x.hash(k)]; ok && x.entries[s].dir == k.dir && x.entries[s].name == k.name {
		return s, true
	}
	s, ok := x.overflow[k]
	return s, ok
}

// place records that the entry with key k lives at s, wherever it lived
// before (old, or none when fresh).
func (x *lruIndex) place(k entryKey, old, s uint32, fresh bool) {
	h := x.hash(k)
	v, taken := x.slots[h]
	switch {
	case !taken:
		x.slots[h] = s
		if !fresh {
			delete(x.overflow, k) // it moves up from the overflow
		}
	case !fresh && v == old:
		x.slots[h] = s
	default:
		x.overflow[k] = s
	}
}

// unplace forgets where the entry with key k at s lives.
func (x *lruIndex) unplace(k entryKey, s uint32) {
	h := x.hash(k)
	if v, ok := x.slots[h]; ok && v == s {
		delete(x.slots, h)
		return
	}
	delete(x.overflow, k)
}

// len reports the number of entries.
func (x *lruIndex) len() int { return len(x.entries) }

// splitRel splits a relative path into its directory ("" at the root) and
// base name.
func splitRel(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, os.PathSeparator)
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

// hasDir reports whether some entry lives directly in dir.
func (x *lruIndex) hasDir(dir string) bool {
	_, ok := x.dirIDs[dir]
	return ok
}

// lookup finds the position of rel in entries.
func (x *lruIndex) lookup(rel string) (uint32, bool) {
	dir, name := splitRel(rel)
	id, ok := x.dirIDs[dir]
	if !ok {
		return 0, false
	}
	return x.find(entryKey{id, name})
}

// get returns a copy of rel's entry.
func (x *lruIndex) get(rel string) (lruEntry, bool) {
	s, ok := x.lookup(rel)
	if !ok {
		return lruEntry{}, false
	}
	return x.entries[s], true
}

// rel rebuilds the relative path of the entry at position s.
func (x *lruIndex) rel(s uint32) string {
	e := &x.entries[s]
	d := x.dirs[e.dir].path
	if d == "" {
		return e.name
	}
	return d + string(os.PathSeparator) + e.name
}

// put records rel with its size and access time. When rel is present, keep
// says to leave it untouched (a walk must not override what Katana saw at
// run time); otherwise its size and time are replaced and it rejoins the
// heap if a pass held it out. put returns how many bytes the index grew by.
func (x *lruIndex) put(rel string, size, atime int64, keep bool) int64 {
	if s, ok := x.lookup(rel); ok {
		if keep {
			return 0
		}
		return x.update(s, size, atime)
	}
	dir, name := splitRel(rel)
	id := x.internDir(dir)
	s := uint32(len(x.entries))
	// Clone the name: a substring would pin the caller's whole path string.
	name = strings.Clone(name)
	x.entries = append(x.entries, lruEntry{name: name, dir: id, pos: -1, size: size, atime: atime})
	x.place(entryKey{id, name}, 0, s, true)
	x.heapPush(s)
	x.bytes += size
	return size
}

func (x *lruIndex) update(s uint32, size, atime int64) int64 {
	e := &x.entries[s]
	grew := size - e.size
	x.bytes += grew
	e.size, e.atime = size, atime
	if e.pos < 0 {
		x.heapPush(s)
	} else {
		x.heapFix(int(e.pos))
	}
	return grew
}

func (x *lruIndex) internDir(dir string) uint32 {
	if id, ok := x.dirIDs[dir]; ok {
		x.dirs[id].refs++
		return id
	}
	dir = strings.Clone(dir)
	var id uint32
	if n := len(x.freeDirs); n > 0 {
		id = x.freeDirs[n-1]
		x.freeDirs = x.freeDirs[:n-1]
		x.dirs[id] = dirRec{path: dir, refs: 1}
	} else {
		id = uint32(len(x.dirs))
		x.dirs = append(x.dirs, dirRec{path: dir, refs: 1})
	}
	x.dirIDs[dir] = id
	return id
}

func (x *lruIndex) releaseDir(id uint32) {
	d := &x.dirs[id]
	if d.refs--; d.refs > 0 {
		return
	}
	delete(x.dirIDs, d.path)
	*d = dirRec{}
	x.freeDirs = append(x.freeDirs, id)
}

// remove drops rel from the index and returns what it held.
func (x *lruIndex) remove(rel string) (lruEntry, bool) {
	s, ok := x.lookup(rel)
	if !ok {
		return lruEntry{}, false
	}
	e := x.entries[s]
	if e.pos >= 0 {
		x.heapRemove(int(e.pos))
	}
	x.unplace(entryKey{e.dir, e.name}, s)
	x.releaseDir(e.dir)
	x.bytes -= e.size

	// Keep entries dense: move the last entry into the hole.
	last := uint32(len(x.entries) - 1)
	if s != last {
		m := x.entries[last]
		x.entries[s] = m
		x.place(entryKey{m.dir, m.name}, last, s, false)
		if m.pos >= 0 {
			x.heap[m.pos] = s
		}
	}
	x.entries[last] = lruEntry{}
	x.entries = x.entries[:last]
	return e, true
}

// popOldest takes the least recently used entry out of the heap (it stays
// in the index with pos -1) and returns its relative path and access time.
func (x *lruIndex) popOldest() (rel string, atime int64, ok bool) {
	if len(x.heap) == 0 {
		return "", 0, false
	}
	s := x.heap[0]
	x.heapRemove(0)
	return x.rel(s), x.entries[s].atime, true
}

// restore puts rel back into the heap if a pass held it out.
func (x *lruIndex) restore(rel string) {
	if s, ok := x.lookup(rel); ok && x.entries[s].pos < 0 {
		x.heapPush(s)
	}
}

func (x *lruIndex) less(i, j int) bool {
	return x.entries[x.heap[i]].atime < x.entries[x.heap[j]].atime
}

func (x *lruIndex) swap(i, j int) {
	h := x.heap
	h[i], h[j] = h[j], h[i]
	x.entries[h[i]].pos = int32(i)
	x.entries[h[j]].pos = int32(j)
}

func (x *lruIndex) heapPush(s uint32) {
	x.heap = append(x.heap, s)
	i := len(x.heap) - 1
	x.entries[s].pos = int32(i)
	x.up(i)
}

// heapRemove takes the element at heap position i out of the heap.
func (x *lruIndex) heapRemove(i int) {
	n := len(x.heap) - 1
	s := x.heap[i]
	if i != n {
		x.swap(i, n)
	}
	x.heap = x.heap[:n]
	x.entries[s].pos = -1
	if i != n {
		x.heapFix(i)
	}
}

func (x *lruIndex) heapFix(i int) {
	if !x.down(i) {
		x.up(i)
	}
}

func (x *lruIndex) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !x.less(i, p) {
			return
		}
		x.swap(i, p)
		i = p
	}
}

// down sifts position i towards the leaves and reports whether it moved.
func (x *lruIndex) down(i int) bool {
	start, n := i, len(x.heap)
	for {
		l := 2*i + 1
		if l >= n || l < 0 {
			break
		}
		m := l
		if r := l + 1; r < n && x.less(r, l) {
			m = r
		}
		if !x.less(m, i) {
			break
		}
		x.swap(i, m)
		i = m
	}
	return i > start
}
