// cache.go owns storage: cached files, their metadata sidecars, atomic writes.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// metaSuffix names the sidecar beside each cached file, as in the original.
	metaSuffix = ".META"
	// tempPrefix starts the name of a file being written; the cleaner leaves
	// young ones alone and removes old ones as crash leftovers.
	tempPrefix = ".tmp-"
	// metaMagic starts the sidecar format of this version; the original's
	// one-line format starts with "C|" and is read too.
	metaMagic = "K1|"
)

// errStorage reports that the cache could not write (disk full, permissions);
// the handler answers 503.
var errStorage = errors.New("cache storage failed")

// entry is the metadata of one cached file, kept in its sidecar.
type entry struct {
	Status       int       `json:"status"`
	ContentType  string    `json:"content_type"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	Stored       time.Time `json:"stored"` // fetched or last revalidated
	TTL          int64     `json:"ttl"`    // freshness lifetime in seconds
	Size         int64     `json:"size"`   // of the data file
	ModTime      int64     `json:"mtime"`  // of the data file, in ns: pairs sidecar and data
	Source       string    `json:"source,omitempty"`
	// InitialAge is the response's corrected initial age at Stored, in ms
	// (RFC 9111 section 4.2.3).
	InitialAge int64 `json:"initial_age,omitempty"`
	// Header holds the end-to-end headers of a stored origin response, for
	// the proxy action; nil for entries whose headers Katana makes itself.
	Header http.Header `json:"header,omitempty"`
	// Vary holds the request's values of the headers that Vary names.
	Vary map[string]string `json:"vary,omitempty"`
	// ETagSynthetic says ETag was made by Katana from the content, so it is
	// never sent to the origin.
	ETagSynthetic bool `json:"etag_synthetic,omitempty"`

	body    []byte        // the file's bytes when the cache holds them in memory
	touched *atomic.Int64 // shared with the entry's memory copy; may be nil

	legacy bool // read from an original .META line

	modFrom string    // the LastModified that modTime was parsed from
	modTime time.Time // LastModified parsed, once per entry kept in memory
	modText string    // modTime in the HTTP date format
}

// lastModifiedText returns LastModified in the HTTP date format, as
// ServeContent writes it.
func (e *entry) lastModifiedText() string {
	if e.modFrom == e.LastModified && e.modText != "" {
		return e.modText
	}
	return e.lastModified().UTC().Format(http.TimeFormat)
}

// lastModified returns LastModified as a time; zero when it is not one.
func (e *entry) lastModified() time.Time {
	if e.modFrom == e.LastModified {
		return e.modTime // also when both are empty
	}
	t, _ := http.ParseTime(e.LastModified)
	return t
}

// lifetime is the entry's freshness lifetime as a duration.
func (e *entry) lifetime() time.Duration { return time.Duration(e.TTL) * time.Second }

// originETag is the ETag the origin gave, for conditional requests to it.
func (e *entry) originETag() string {
	if e.ETagSynthetic {
		return ""
	}
	return e.ETag
}

// directives are the Cache-Control directives of a stored origin response.
func (e *entry) directives() directives { return parseDirectives(e.Header) }

// age is the entry's current age (RFC 9111 section 4.2.3).
func (e *entry) age(now time.Time) time.Duration {
	return time.Duration(e.InitialAge)*time.Millisecond + max(0, now.Sub(e.Stored))
}

// diskCache stores files under a directory. It holds no state of its own in
// memory and is safe for concurrent use; writers never expose partial files.
type diskCache struct {
	dir     string
	touch   func(rel string, size int64)       // records accesses for the cleaner; may be nil
	acquire func(path string) (release func()) // keeps the cleaner off a file; may be nil
	metas   metaTable                          // sidecars already read
}

// metaTableSize bounds the sidecars kept in memory, about 1 KB each.
const metaTableSize = 50_000

// Small files are kept in memory too, up to hotFileMax bytes each and
// hotBytesMax in all, so that a hit on a thumbnail costs no system call
// for the file.
const (
	hotFileMax  = 64 << 10
	hotBytesMax = 64 << 20
)

// metaTable keeps parsed sidecars, and the bodies of small files, in memory.
// Both are used only while the data file still has the size and mtime the
// sidecar records (one stat), so files changed or deleted behind the
// cache's back (the cleaner, an operator's rm) are read again. Every write
// of an entry through the cache replaces or drops it.
// It is safe for concurrent use; entries are copied in and out, and bodies
// are never changed once stored.
type metaTable struct {
	mu    sync.Mutex // guards m and bytes
	m     map[string]metaItem
	bytes int64 // of the bodies held
}

type metaItem struct {
	e       entry
	body    []byte        // nil unless the file is small and was served
	checked int64         // unix ns when the file was last seen to match e
	touched *atomic.Int64 // unix ns of the last hit told to the cleaner
}

// heldCheckEvery is how long a held body is served without looking at its
// file again. Katana's own deletions (cleaner, purge) drop the copy at
// once; this bounds how long one made behind its back is missed.
const heldCheckEvery = int64(time.Second)

// checkedAt records that the file of rel matched its entry at now.
func (t *metaTable) checkedAt(rel string, now int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if it, ok := t.m[rel]; ok {
		it.checked = now
		t.m[rel] = it
	}
}

func (t *metaTable) get(rel string) (metaItem, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	it, ok := t.m[rel]
	return it, ok
}

// put stores e for rel, and body when it is given and fits.
func (t *metaTable) put(rel string, e *entry, body []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.putLocked(rel, e, body)
}

func (t *metaTable) putLocked(rel string, e *entry, body []byte) {
	if t.m == nil {
		t.m = make(map[string]metaItem)
	}
	if old, ok := t.m[rel]; ok {
		t.bytes -= int64(len(old.body))
	} else if len(t.m) >= metaTableSize {
		for k, it := range t.m { // drop one, chosen by map order: cheap and fair enough
			t.bytes -= int64(len(it.body))
			delete(t.m, k)
			break
		}
	}
	if int64(len(body)) > hotFileMax || t.bytes+int64(len(body)) > hotBytesMax {
		body = nil
	}
	t.bytes += int64(len(body))
	it := metaItem{e: *e, body: body, checked: time.Now().UnixNano(), touched: new(atomic.Int64)}
	it.e.modFrom, it.e.modTime = it.e.LastModified, it.e.lastModified()
	it.e.modText = it.e.modTime.UTC().Format(http.TimeFormat)
	t.m[rel] = it
}

// putIfSame stores body with e for rel if the table still holds e's
// version of the file (same size and modification time).
func (t *metaTable) putIfSame(rel string, e *entry, body []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if it, ok := t.m[rel]; ok && it.e.Size == e.Size && it.e.ModTime == e.ModTime {
		t.putLocked(rel, e, body)
	}
}

func (t *metaTable) drop(rel string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bytes -= int64(len(t.m[rel].body))
	delete(t.m, rel)
}

func newDiskCache(dir string) (*diskCache, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cache_dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("cache_dir %s: %w", dir, err)
	}
	return &diskCache{dir: abs}, nil
}

// abs returns the file path of a cache-relative path.
func (c *diskCache) abs(rel string) string { return filepath.Join(c.dir, filepath.FromSlash(rel)) }

// lookup returns the entry stored at rel, or nil when there is none or when
// the data file and the sidecar do not belong together (a crash between the
// two renames, a manual deletion, an empty file).
func (c *diskCache) lookup(rel string) *entry {
	if it, ok := c.metas.get(rel); ok {
		e := it.e
		e.body, e.touched = it.body, it.touched
		now := time.Now().UnixNano()
		if it.body != nil && now-it.checked < heldCheckEvery {
			return &e
		}
		fi, err := os.Stat(c.abs(rel))
		if err == nil && fi.Size() == e.Size && fi.ModTime().UnixNano() == e.ModTime {
			if it.body != nil {
				c.metas.checkedAt(rel, now)
			}
			return &e
		}
		c.metas.drop(rel)
	}
	e := c.readMeta(rel, c.abs(rel))
	if e != nil {
		c.metas.put(rel, e, nil)
	}
	return e
}

// hold keeps the body of a small file in memory for the next hits.
// It does nothing when the entry was dropped or replaced since e was looked
// up (a purge, an eviction, a new version): the bytes would be stale.
func (c *diskCache) hold(rel string, e *entry, body []byte) {
	if int64(len(body)) == e.Size && e.Size <= hotFileMax {
		c.metas.putIfSame(rel, e, body)
	}
}

// readMeta reads and checks the sidecar of rel, whose data file is p.
func (c *diskCache) readMeta(rel, p string) *entry {
	b, err := os.ReadFile(p + metaSuffix)
	if err != nil {
		return nil
	}
	e, err := parseMeta(b)
	if err != nil {
		return nil
	}
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	if e.legacy {
		if fi.Size() == 0 {
			return nil // an emptied file is a miss, not a 404 (spec B12)
		}
		e.Size, e.ModTime = fi.Size(), fi.ModTime().UnixNano()
		e.ContentType = sniffFile(p)
	} else if fi.Size() != e.Size || fi.ModTime().UnixNano() != e.ModTime {
		return nil
	}
	return e
}

// parseMeta reads a sidecar in this version's format or the original's
// "C|timestamp|expires|last-modified|etag" line.
func parseMeta(b []byte) (*entry, error) {
	switch {
	case bytes.HasPrefix(b, []byte(metaMagic)):
		e := &entry{}
		if err := json.Unmarshal(b[len(metaMagic):], e); err != nil {
			return nil, fmt.Errorf("sidecar: %w", err)
		}
		if e.Status == 0 || e.Size < 0 {
			return nil, errors.New("sidecar: incomplete")
		}
		return e, nil
	case bytes.HasPrefix(b, []byte("C|")):
		return parseLegacyMeta(string(bytes.TrimSpace(b)))
	}
	return nil, errors.New("sidecar: unknown format")
}

// parseLegacyMeta reads the original's META line. The ETag comes last and may
// itself contain "|" (spec B17), so only the first four separators split.
func parseLegacyMeta(s string) (*entry, error) {
	parts := strings.SplitN(s, "|", 5)
	if len(parts) != 5 {
		return nil, errors.New("sidecar: legacy line has too few fields")
	}
	ts, err1 := strconv.ParseInt(parts[1], 10, 64)
	ttl, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || ttl < 0 {
		return nil, errors.New("sidecar: legacy timestamp or expiry is not a number")
	}
	return &entry{
		Status:       200,
		Stored:       time.Unix(ts, 0),
		TTL:          ttl,
		LastModified: parts[3],
		ETag:         parts[4],
		legacy:       true,
	}, nil
}

// writeMeta writes the sidecar of rel atomically.
func (c *diskCache) writeMeta(rel string, e *entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	p := c.abs(rel)
	if err := writeAtomic(p+metaSuffix, append([]byte(metaMagic), b...)); err != nil {
		c.metas.drop(rel)
		return err
	}
	c.metas.put(rel, e, nil)
	return nil
}

// pending is a cache file being written. Commit makes it visible; Abort
// removes it. Exactly one of them must be called.
type pending struct {
	*os.File
	c   *diskCache
	rel string
}

// create starts writing the file for rel. It is written in the cache's own
// temporary directory, on the same filesystem, so that a fetch that fails
// leaves no directory behind (the original made one for every 404, spec B20).
func (c *diskCache) create(rel string) (*pending, error) {
	f, err := os.CreateTemp(c.tmpDir(), tempPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(c.tmpDir(), 0o755); err == nil {
			f, err = os.CreateTemp(c.tmpDir(), tempPrefix+"*")
		}
	}
	if err != nil {
		return nil, storageError(err)
	}
	// CreateTemp makes files 0600; cached files must be readable by nginx
	// serving them through X-Accel-Redirect.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, storageError(err)
	}
	return &pending{File: f, c: c, rel: rel}, nil
}

// tmpDir holds files being written.
func (c *diskCache) tmpDir() string { return filepath.Join(c.dir, reservedDir, "tmp") }

// Abort discards the file.
func (p *pending) Abort() {
	p.File.Close()
	os.Remove(p.File.Name())
}

// Commit renames the data into place, then its sidecar. A reader between the
// two renames, or after a crash between them, sees a sidecar that does not
// match the data (size and mtime) and treats the entry as missing.
func (p *pending) Commit(e *entry) (*entry, error) {
	fi, err := p.File.Stat()
	if err != nil {
		p.Abort()
		return nil, storageError(err)
	}
	if err = p.File.Close(); err != nil {
		os.Remove(p.File.Name())
		return nil, storageError(err)
	}
	e.Size, e.ModTime = fi.Size(), fi.ModTime().UnixNano()
	dst := p.c.abs(p.rel)
	// The cleaner may remove a directory it just emptied between MkdirAll
	// and Rename: make it again once.
	for try := 0; try < 2; try++ {
		if err = os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
			if err = os.Rename(p.File.Name(), dst); !errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
	}
	if err != nil {
		os.Remove(p.File.Name())
		return nil, storageError(err)
	}
	if err := p.c.writeMeta(p.rel, e); err != nil {
		return nil, storageError(err)
	}
	if p.c.touch != nil {
		p.c.touch(p.rel, e.Size)
	}
	return e, nil
}

// forget drops what is kept in memory of rel, whose files were deleted.
func (c *diskCache) forget(rel string) { c.metas.drop(rel) }

// remove deletes the entry at rel: data first, then its sidecar.
// The files go first, so that no lookup in between reads them back.
func (c *diskCache) remove(rel string) {
	p := c.abs(rel)
	os.Remove(p)
	os.Remove(p + metaSuffix)
	c.metas.drop(rel)
}

// storeBytes writes data as the file for rel with metadata e.
func (c *diskCache) storeBytes(rel string, e *entry, data []byte) (*entry, error) {
	p, err := c.create(rel)
	if err != nil {
		return nil, err
	}
	if _, err := p.Write(data); err != nil {
		p.Abort()
		return nil, storageError(err)
	}
	return p.Commit(e)
}

// open opens the data file of rel for reading and records the access. The
// cleaner leaves the file alone until release is called.
func (c *diskCache) open(rel string) (f *os.File, release func(), err error) {
	p := c.abs(rel)
	release = func() {}
	if c.acquire != nil {
		release = c.acquire(p)
	}
	if f, err = os.Open(p); err != nil {
		release()
		return nil, nil, err
	}
	if c.touch != nil {
		if fi, err := f.Stat(); err == nil {
			c.touch(rel, fi.Size())
		}
	}
	return f, release, nil
}

// pin keeps the cleaner off the file of rel until the returned func runs.
func (c *diskCache) pin(rel string) (release func()) {
	if c.acquire == nil {
		return func() {}
	}
	return c.acquire(c.abs(rel))
}

// touchEvery is how often hits on one entry served from memory are told
// to the cleaner: its order of use needs no finer grain.
const touchEvery = int64(time.Second)

// touched records a hit on e served from memory, for the cleaner.
func (c *diskCache) touched(rel string, e *entry) {
	if c.touch == nil {
		return
	}
	if e.touched != nil {
		now := time.Now().UnixNano()
		last := e.touched.Load()
		if now-last < touchEvery || !e.touched.CompareAndSwap(last, now) {
			return
		}
	}
	c.touch(rel, e.Size)
}

// writeAtomic writes a small file through a temporary file and a rename.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), tempPrefix+"*")
	if err != nil {
		return err
	}
	if err = f.Chmod(0o644); err == nil {
		_, err = f.Write(data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// storageError marks a write failure so the handler can answer 503.
func storageError(err error) error {
	return fmt.Errorf("%w: %w", errStorage, err)
}

// isDiskFull reports whether err means the disk or its inodes are exhausted.
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// sniffFile names the content type of a file from its first bytes.
func sniffFile(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "application/octet-stream"
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	return contentType(head[:n], "")
}

// contentType names bytes: the image format sniffed from the content first,
// then the origin's Content-Type, then Go's content sniffing.
func contentType(head []byte, fromOrigin string) string {
	if f := sniffFormat(head); f != "" {
		return "image/" + f
	}
	if fromOrigin != "" {
		return fromOrigin
	}
	return http.DetectContentType(head)
}

// hashFile returns a strong validator for the file's content.
func hashFile(f *os.File) (string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:12]) + `"`, nil
}

// variantETag derives a strong ETag for a variant from its source's
// validator and the variant's cache key, so each variant has its own.
func variantETag(source, key string) string {
	h := sha256.Sum256([]byte(source + "\x00" + key))
	return `"` + hex.EncodeToString(h[:12]) + `"`
}
