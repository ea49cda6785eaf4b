// cleaner_test.go checks the cleaner on real files, with a real tmpfs and a fake statfs.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"
)

const (
	testBlock  = 4096
	testFSSize = 8 << 20
	testMeta   = `C|1375472452|300|Wed, 23 May 2012 14:03:44 GMT|"100599a17-17db2"`
)

// blocksOf is how many 4 KiB blocks a file of n bytes takes, as on tmpfs.
func blocksOf(n int64) uint64 { return uint64((n + testBlock - 1) / testBlock) }

// fakeStatfs pretends dir lies on a filesystem of capacity bytes and inodes
// whose used part is exactly what is under dir now, counted in 4 KiB blocks.
func fakeStatfs(capacity int64, inodes uint64) func(string) (fsUsage, error) {
	return func(dir string) (fsUsage, error) {
		var used, files uint64
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			files++
			if d.Type().IsRegular() {
				fi, err := d.Info()
				if err != nil {
					return err
				}
				used += blocksOf(fi.Size())
			}
			return nil
		})
		total := uint64(capacity / testBlock)
		free := total - min(used, total)
		return fsUsage{Blocks: total, BlocksFree: free, BlocksAvail: free,
			Files: inodes, FilesFree: inodes - min(files, inodes), BlockSize: testBlock}, err
	}
}

// fsVariant is a cache directory on a filesystem whose usage the cleaner
// measures: a real 8 MiB tmpfs, or a temp dir behind fakeStatfs.
type fsVariant struct {
	name   string
	dir    func(t *testing.T) string
	statfs func(string) (fsUsage, error) // nil: the real statfs
}

func fsVariants() []fsVariant {
	return []fsVariant{
		{"fake", func(t *testing.T) string { return t.TempDir() }, fakeStatfs(testFSSize, 1<<20)},
		{"tmpfs", func(t *testing.T) string { return mountTmpfs(t, "8m") }, nil},
	}
}

// testData returns n deterministic bytes for the entry named rel.
func testData(rel string, n int) []byte {
	h := sha256.Sum256([]byte(rel))
	r := rand.New(rand.NewChaCha8(h))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// writeEntry writes a data file of n bytes at dir/rel and its sidecar, and
// returns the data path and the entry's size (data plus sidecar).
func writeEntry(t *testing.T, dir, rel string, n int) (string, int64) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, testData(rel, n), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+sidecarSuffix, []byte(testMeta), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, int64(n + len(testMeta))
}

func writeFile(t *testing.T, p string, n int, age time.Duration) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, testData(p, n), 0o644); err != nil {
		t.Fatal(err)
	}
	setAge(t, p, age)
}

// setAge sets both times of p to age ago.
func setAge(t *testing.T, p string, age time.Duration) {
	t.Helper()
	at := time.Now().Add(-age)
	if err := os.Chtimes(p, at, at); err != nil {
		t.Fatal(err)
	}
}

func fileExists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Lstat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// walked returns a Cleaner for opt whose index is built.
func walked(t *testing.T, opt cleanerOptions) *Cleaner {
	t.Helper()
	c := newCleaner(opt)
	if err := c.walk(context.Background()); err != nil {
		t.Fatalf("walk(%s) = %v, want nil", opt.Dir, err)
	}
	return c
}

// wantDeletes is how many of the oldest entries a pass deletes, batch by
// batch, to bring used blocks from over high to under low percent.
func wantDeletes(perEntry, total uint64, n, batch int, high, low float64) int {
	pct := func(k int) float64 { return 100 * float64(uint64(k)*perEntry) / float64(total) }
	if pct(n) <= high {
		return 0
	}
	d := 0
	for d < n && pct(n-d) >= low {
		d += batch
	}
	return min(d, n)
}

func TestCleanerEvictsLeastRecentlyUsed(t *testing.T) {
	const n, size = 40, 150 << 10
	for _, v := range fsVariants() {
		for _, batch := range []int{1, 7} {
			t.Run(fmt.Sprintf("%s/batch%d", v.name, batch), func(t *testing.T) {
				dir := v.dir(t)
				paths := make([]string, n)
				var esize int64
				for i := range n {
					rel := fmt.Sprintf("img/%d/%02d.jpg", i%4, i)
					paths[i], esize = writeEntry(t, dir, rel, size)
					// File times say the opposite of the accesses below:
					// what Katana saw at run time must win.
					setAge(t, paths[i], time.Duration(n-i)*time.Minute)
				}
				c := walked(t, cleanerOptions{Dir: dir, MaxUsage: 70, LowWater: 40,
					BatchSize: batch, statfs: v.statfs})
				order := rand.New(rand.NewPCG(1, 2)).Perm(n)
				for _, i := range order {
					c.Touch(paths[i], esize)
				}

				st, err := c.Pass(context.Background())
				if err != nil {
					t.Fatalf("Pass() error = %v, want nil", err)
				}
				perEntry := blocksOf(size) + blocksOf(int64(len(testMeta)))
				want := wantDeletes(perEntry, testFSSize/testBlock, n, batch, 70, 40)
				if st.UsageBefore <= 70 || st.UsageAfter >= 40 || st.Deleted != want {
					t.Fatalf("Pass() usage %.1f%% -> %.1f%%, deleted %d; want >70%% -> <40%%, %d",
						st.UsageBefore, st.UsageAfter, st.Deleted, want)
				}
				for rank, i := range order {
					data, meta := fileExists(t, paths[i]), fileExists(t, paths[i]+sidecarSuffix)
					if want := rank >= want; data != want || meta != want {
						t.Errorf("entry %d (access rank %d): data %v, sidecar %v; want %v",
							i, rank, data, meta, want)
					}
				}
				if s := c.Stats(); s.Entries != n-want || s.Evictions != uint64(want) {
					t.Errorf("Stats() = %d entries, %d evictions; want %d, %d",
						s.Entries, s.Evictions, n-want, want)
				}
			})
		}
	}
}

func TestCleanerInodeUsage(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := range 10 {
		p, _ := writeEntry(t, dir, fmt.Sprintf("%d.png", i), 10)
		paths = append(paths, p)
	}
	// 21 inodes (root + 10 entries × 2) of 22: 95%. Blocks stay near empty.
	c := walked(t, cleanerOptions{Dir: dir, MaxUsage: 90, LowWater: 70,
		statfs: fakeStatfs(testFSSize, 22)})
	for _, p := range paths {
		c.Touch(p, 10)
	}
	st, err := c.Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// One batch of up to 100 takes all 10 before usage is measured again.
	if st.Deleted != 10 {
		t.Errorf("Pass() deleted %d, want 10 (one batch of up to 100)", st.Deleted)
	}

	for i := range 10 {
		p, _ := writeEntry(t, dir, fmt.Sprintf("%d.png", i), 10)
		c.Touch(p, 10)
	}
	// With batches of one, 3 deletes leave 15/22 inodes = 68% < 70%.
	c.opt.BatchSize = 1
	if st, err = c.Pass(context.Background()); err != nil || st.Deleted != 3 {
		t.Errorf("Pass() with batch 1 = %d deleted, %v; want 3, nil", st.Deleted, err)
	}
	for i, p := range paths {
		if got, want := fileExists(t, p), i >= 3; got != want {
			t.Errorf("fileExists(%d.png) = %v, want %v", i, got, want)
		}
	}
}

func TestCleanerMaxBytes(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := range 10 {
		p, _ := writeEntry(t, dir, fmt.Sprintf("a/%d.jpg", i), 200-len(testMeta))
		paths = append(paths, p)
	}
	// The filesystem is nearly empty: only the byte budget can trigger.
	c := walked(t, cleanerOptions{Dir: dir, MaxUsage: 90, MaxBytes: 1000,
		statfs: fakeStatfs(1<<30, 1<<20)})
	for _, p := range paths {
		c.Touch(p, 200)
	}
	st, err := c.Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 2000 bytes over 1000: delete down to 95% (950), that is keep 4.
	if st.Deleted != 6 || st.FreedBytes != 1200 {
		t.Errorf("Pass() = %d deleted, %d bytes; want 6, 1200", st.Deleted, st.FreedBytes)
	}
	for i, p := range paths {
		if got, want := fileExists(t, p), i >= 6; got != want {
			t.Errorf("fileExists(a/%d.jpg) = %v, want %v", i, got, want)
		}
	}
	if s := c.Stats(); s.Bytes != 800 || s.Entries != 4 || s.EvictedBytes != 1200 {
		t.Errorf("Stats() = %d bytes, %d entries, %d evicted; want 800, 4, 1200",
			s.Bytes, s.Entries, s.EvictedBytes)
	}

	// Under the budget, a pass deletes nothing.
	if st, err := c.Pass(context.Background()); err != nil || st.Deleted != 0 {
		t.Errorf("second Pass() = %d deleted, %v; want 0, nil", st.Deleted, err)
	}
}

// readHalf opens p and reads half of it.
func readHalf(t *testing.T, p string) (*os.File, []byte) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	half := make([]byte, fi.Size()/2)
	if _, err := io.ReadFull(f, half); err != nil {
		t.Fatal(err)
	}
	return f, half
}

func TestCleanerOpenReaderStreams(t *testing.T) {
	const size = 1 << 20
	for _, v := range fsVariants() {
		t.Run(v.name, func(t *testing.T) {
			dir := v.dir(t)
			acq, _ := writeEntry(t, dir, "src/acquired.webp", size)
			plain, _ := writeEntry(t, dir, "src/open.webp", size)
			other, _ := writeEntry(t, dir, "src/other.webp", size)
			c := walked(t, cleanerOptions{Dir: dir, MaxUsage: 1, LowWater: 0.5,
				statfs: v.statfs})
			for _, p := range []string{acq, plain, other} {
				c.Touch(p, size)
			}
			release := c.Acquire(acq)

			// Readers stream while the pass runs in another goroutine.
			type result struct {
				path string
				body []byte
				err  error
			}
			passDone := make(chan struct{})
			results := make(chan result, 2)
			for _, p := range []string{acq, plain} {
				f, half := readHalf(t, p)
				go func() {
					<-passDone
					rest, err := io.ReadAll(f)
					results <- result{p, append(half, rest...), err}
				}()
			}
			go func() {
				defer close(passDone)
				if _, err := c.Pass(context.Background()); err != nil {
					t.Errorf("Pass() = %v, want nil", err)
				}
			}()
			for range 2 {
				r := <-results
				want := testData(filepath.ToSlash(r.path[len(dir)+1:]), size)
				if r.err != nil || !bytes.Equal(r.body, want) {
					t.Errorf("read %s = %d bytes, %v; want all %d bytes",
						r.path, len(r.body), r.err, size)
				}
			}

			if !fileExists(t, acq) || fileExists(t, plain) || fileExists(t, other) {
				t.Errorf("after Pass: acquired %v, open %v, other %v; want true, false, false",
					fileExists(t, acq), fileExists(t, plain), fileExists(t, other))
			}
			release()
			release() // a second release must not free someone else's hold
			if _, err := c.Pass(context.Background()); err != nil || fileExists(t, acq) {
				t.Errorf("Pass() after release: %v, exists = %v; want nil, false",
					err, fileExists(t, acq))
			}
		})
	}
}

func TestCleanerAcquireCounts(t *testing.T) {
	dir := t.TempDir()
	p, sz := writeEntry(t, dir, "x.jpg", 100)
	c := walked(t, cleanerOptions{Dir: dir, MaxBytes: 1})
	r1 := c.Acquire(p)
	r2 := c.Acquire(p)
	r1()
	r1()
	if st, _ := c.Pass(context.Background()); st.Deleted != 0 || !fileExists(t, p) {
		t.Fatalf("Pass() with one reader left deleted %d, want 0", st.Deleted)
	}
	r2()
	if st, _ := c.Pass(context.Background()); st.Deleted != 1 || st.FreedBytes != sz {
		t.Errorf("Pass() after releases = %d deleted, %d bytes; want 1, %d",
			st.Deleted, st.FreedBytes, sz)
	}
}

func TestCleanerLeftovers(t *testing.T) {
	dir := t.TempDir()
	old := 2 * time.Hour
	young := time.Minute
	files := []struct {
		rel       string
		age       time.Duration
		survives  bool
		dataFirst bool // write rel without .META as its data file
	}{
		{"a/.tmp-123", old, false, false},
		{"a/.tmp-456", young, true, false},
		{"b/orphan.png.META", old, false, false},
		{"b/young.png.META", young, true, false},
		{"c/keep.png.META", old, true, true},
		{"legacy/no-sidecar.jpg", old, true, false},
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.rel))
		if f.dataFirst {
			writeFile(t, p[:len(p)-len(sidecarSuffix)], 10, old)
		}
		writeFile(t, p, 10, f.age)
	}
	for _, d := range []string{"empty/x/y", "fresh"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"empty/x/y", "empty/x", "empty"} {
		setAge(t, filepath.Join(dir, d), old)
	}
	// b/ is left empty once its old orphan goes, but holds the young one.

	st, err := cleanOnce(context.Background(), cleanerOptions{Dir: dir, MaxUsage: 99,
		statfs: fakeStatfs(1<<30, 1<<20)})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if got := fileExists(t, filepath.Join(dir, filepath.FromSlash(f.rel))); got != f.survives {
			t.Errorf("fileExists(%s) = %v, want %v", f.rel, got, f.survives)
		}
	}
	if fileExists(t, filepath.Join(dir, "empty")) || !fileExists(t, filepath.Join(dir, "fresh")) {
		t.Errorf("empty dirs: old one exists %v, fresh one exists %v; want false, true",
			fileExists(t, filepath.Join(dir, "empty")), fileExists(t, filepath.Join(dir, "fresh")))
	}
	if st.Leftovers != 3 || st.Entries != 2 {
		t.Errorf("cleanOnce() = %d leftovers, %d entries; want 3, 2", st.Leftovers, st.Entries)
	}
	if !fileExists(t, dir) {
		t.Errorf("the cache directory itself was removed")
	}
}

func TestCleanerYoungLeftoverLaterPass(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, "s", ".tmp-abc")
	writeFile(t, tmp, 10, time.Minute)
	c := walked(t, cleanerOptions{Dir: dir, MaxUsage: 99, statfs: fakeStatfs(1<<30, 1<<20)})
	if _, err := c.Pass(context.Background()); err != nil || !fileExists(t, tmp) {
		t.Fatalf("first Pass(): %v, temp exists = %v; want nil, true", err, fileExists(t, tmp))
	}
	// The writer died: the temp file ages past the grace period.
	setAge(t, tmp, 2*time.Hour)
	st, err := c.Pass(context.Background())
	if err != nil || fileExists(t, tmp) || fileExists(t, filepath.Dir(tmp)) || st.Leftovers != 1 {
		t.Errorf("second Pass(): %v, %d leftovers, temp exists = %v; want nil, 1, false",
			err, st.Leftovers, fileExists(t, tmp))
	}
}

func TestCleanerProtectsPlaceholderAndOutside(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "cache")
	holder := filepath.Join(dir, "404.jpeg")
	writeFile(t, holder, 100, 48*time.Hour)
	writeFile(t, holder+sidecarSuffix, 10, 48*time.Hour) // its data is there: no orphan
	outside := filepath.Join(base, "cache-other", "f.jpg")
	writeFile(t, outside, 100, 48*time.Hour)
	inside, _ := writeEntry(t, dir, "img/a.jpg", 100)

	c := walked(t, cleanerOptions{Dir: dir, MaxBytes: 1, Protect: []string{holder},
		statfs: fakeStatfs(1<<30, 1<<20)})
	c.Touch(holder, 100)
	c.Touch(filepath.Join(dir, "..", "cache-other", "f.jpg"), 100)
	c.Touch(outside, 100)
	st, err := c.Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !fileExists(t, holder) || !fileExists(t, holder+sidecarSuffix) ||
		!fileExists(t, outside) || fileExists(t, inside) {
		t.Errorf("placeholder %v, its sidecar %v, outside %v, cache entry %v; "+
			"want true, true, true, false", fileExists(t, holder),
			fileExists(t, holder+sidecarSuffix), fileExists(t, outside), fileExists(t, inside))
	}
	if st.Deleted != 1 || st.Exhausted || !fileExists(t, dir) {
		t.Errorf("Pass() = %d deleted, exhausted %v, dir kept %v; want 1, false, true",
			st.Deleted, st.Exhausted, fileExists(t, dir))
	}
}

func TestCleanerPathNormalisation(t *testing.T) {
	base := t.TempDir()
	t.Chdir(base)
	p, sz := writeEntry(t, "cache", "a/b.jpg", 50)
	c := walked(t, cleanerOptions{Dir: "cache"})
	spellings := []string{p, "./cache//a/./b.jpg", filepath.Join(base, "cache", "a", "b.jpg")}
	for _, q := range spellings {
		c.Touch(q, sz)
	}
	if s := c.Stats(); s.Entries != 1 || s.Bytes != sz {
		t.Errorf("Stats() after walk and 3 spellings = %d entries, %d bytes; want 1, %d",
			s.Entries, s.Bytes, sz)
	}
	c.Forget(filepath.Join(base, "cache", "a", "..", "a", "b.jpg"))
	if s := c.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Errorf("Stats() after Forget = %d entries, %d bytes; want 0, 0", s.Entries, s.Bytes)
	}
}

// passLog is a slog handler that hands each pass's record to a channel.
type passLog struct{ ch chan slog.Record }

func (h passLog) Enabled(context.Context, slog.Level) bool { return true }
func (h passLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h passLog) WithGroup(string) slog.Handler            { return h }

func (h passLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "cache clean pass" {
		select {
		case h.ch <- r.Clone():
		default: // the test stopped listening
		}
	}
	return nil
}

// waitPass waits for the next pass's log record and returns its attributes.
func waitPass(t *testing.T, ch chan slog.Record) map[string]slog.Value {
	t.Helper()
	select {
	case r := <-ch:
		attrs := map[string]slog.Value{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value; return true })
		return attrs
	case <-time.After(time.Minute):
		t.Fatal("no cleaning pass within a minute")
		return nil
	}
}

func TestCleanerRestartRebuildsIndex(t *testing.T) {
	const n, size = 30, 150 << 10
	for _, v := range fsVariants() {
		t.Run(v.name, func(t *testing.T) {
			dir := v.dir(t)
			paths := make([]string, n)
			var esize int64
			for i := range n {
				paths[i], esize = writeEntry(t, dir, fmt.Sprintf("r/%02d/src.png", i), size)
			}
			first := walked(t, cleanerOptions{Dir: dir, statfs: v.statfs})
			for _, p := range paths {
				first.Touch(p, esize)
			}

			// The process restarts. Only file times remain: atime when newer
			// than mtime, else mtime. Rank r is the r-th least recent.
			ranks := rand.New(rand.NewPCG(3, 4)).Perm(n)
			base := time.Now().Add(-24 * time.Hour)
			for i, p := range paths {
				at := base.Add(time.Duration(ranks[i]) * time.Minute)
				other := base.Add(-time.Hour)
				a, m := at, other
				if i%2 == 1 {
					a, m = other, at
				}
				if err := os.Chtimes(p, a, m); err != nil {
					t.Fatal(err)
				}
			}
			logs := make(chan slog.Record, 64)
			second := newCleaner(cleanerOptions{Dir: dir, MaxUsage: 40, LowWater: 30,
				BatchSize: 1, Every: time.Hour, GrowthStep: 1, statfs: v.statfs,
				Logger: slog.New(passLog{logs})})
			stop := second.start(context.Background())
			defer stop()

			attrs := waitPass(t, logs)
			perEntry := blocksOf(size) + blocksOf(int64(len(testMeta)))
			want := wantDeletes(perEntry, testFSSize/testBlock, n, 1, 40, 30)
			if got := attrs["deleted"].Int64(); got != int64(want) || want == 0 {
				t.Fatalf("first pass after restart deleted %d, want %d (>0)", got, want)
			}
			for i, p := range paths {
				got, dirGot := fileExists(t, p), fileExists(t, filepath.Dir(p))
				if w := ranks[i] >= want; got != w || dirGot != w {
					t.Errorf("entry %d (rank %d): exists = %v, its dir %v; want %v",
						i, ranks[i], got, dirGot, w)
				}
			}

			// It carries on: new stores push usage over again and the growth
			// triggers a pass that takes the oldest walked entries first.
			var fresh []string
			for i := range 8 {
				p, sz := writeEntry(t, dir, fmt.Sprintf("new/%d.png", i), size)
				fresh = append(fresh, p)
				second.Touch(p, sz)
			}
			for {
				if attrs = waitPass(t, logs); attrs["deleted"].Int64() > 0 {
					break
				}
			}
			for _, p := range fresh {
				if !fileExists(t, p) {
					t.Errorf("fresh entry %s was deleted before older ones", p)
				}
			}
			s := second.Stats()
			if wantN := n + len(fresh) - int(s.Evictions); !s.Indexed || s.Entries != wantN {
				t.Errorf("Stats() = %+v; want indexed, %d entries", s, wantN)
			}
		})
	}
}

func TestLRUIndexOrder(t *testing.T) {
	tests := []struct {
		name string
		mask uint64
	}{
		{"full hash", ^uint64(0)},
		{"colliding hash", 0x1f}, // 32 hash values for ~4000 keys
		{"one hash value", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newLRUIndex()
			x.mask = tt.mask
			testLRUIndexOrder(t, x)
		})
	}
}

func testLRUIndexOrder(t *testing.T, x *lruIndex) {
	r := rand.New(rand.NewPCG(5, 6))
	model := map[string]int64{}
	rel := func() string {
		return filepath.Join(fmt.Sprintf("d%d", r.IntN(20)), fmt.Sprintf("f%d", r.IntN(200)))
	}
	for step := range 20000 {
		k := rel()
		switch op := r.IntN(10); {
		case op < 6:
			at := r.Int64N(1e6)
			x.put(k, int64(step), at, false)
			model[k] = at
		case op < 8:
			_, ok := x.remove(k)
			if _, want := model[k]; ok != want {
				t.Fatalf("remove(%s) = %v, want %v", k, ok, want)
			}
			delete(model, k)
		default:
			x.put(k, 1, 0, true) // keep: only adds when absent
			if _, ok := model[k]; !ok {
				model[k] = 0
			}
		}
	}
	type kv struct {
		k  string
		at int64
	}
	var want []kv
	for k, at := range model {
		want = append(want, kv{k, at})
	}
	sort.Slice(want, func(i, j int) bool { return want[i].at < want[j].at })
	if x.len() != len(want) {
		t.Fatalf("len() = %d, want %d", x.len(), len(want))
	}
	for _, w := range want {
		if e, ok := x.get(w.k); !ok || e.atime != w.at || x.rel(mustLookup(t, x, w.k)) != w.k {
			t.Fatalf("get(%s) = %+v, %v; want time %d", w.k, e, ok, w.at)
		}
	}
	var prev int64 = -1
	got := 0
	for {
		k, at, ok := x.popOldest()
		if !ok {
			break
		}
		if at < prev || model[k] != at {
			t.Fatalf("popOldest() = %s at %d after %d, want ascending, model at %d",
				k, at, prev, model[k])
		}
		prev = at
		got++
	}
	if got != len(want) {
		t.Errorf("popOldest() yielded %d entries, want %d", got, len(want))
	}
	// Popped entries stay indexed and restore brings them back in order.
	for _, w := range want {
		x.restore(w.k)
	}
	if k, _, ok := x.popOldest(); len(want) > 0 && (!ok || model[k] != want[0].at) {
		t.Errorf("after restore popOldest() = %s, want time %d", k, want[0].at)
	}
}

func TestCleanOnceDirectory(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	writeFile(t, file, 10, 0)
	tests := []struct {
		name    string
		dir     string
		wantErr bool
	}{
		{"missing dir is an empty cache", filepath.Join(base, "missing"), false},
		{"dir is a file", file, true},
		{"no dir", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := cleanOnce(context.Background(), cleanerOptions{Dir: tt.dir, MaxUsage: 90})
			if (err != nil) != tt.wantErr || st.Deleted != 0 {
				t.Errorf("cleanOnce(%q) = %d deleted, %v; want 0, error %v",
					tt.dir, st.Deleted, err, tt.wantErr)
			}
		})
	}
	if !fileExists(t, file) {
		t.Errorf("cleanOnce removed %s", file)
	}
}

// benchPaths returns n cache paths under dir laid out like Katana's: one
// source and three variants per directory, two levels of hashed fan-out.
func benchPaths(dir string, n int) []string {
	names := []string{"source.jpg", "300x200_q75.webp", "640x480_q80_fit.jpeg", "96x96_q70.png"}
	out := make([]string, n)
	for i := range out {
		h := uint32(i/len(names)) * 2654435761
		fan := fmt.Sprintf("%02x/%02x/%08x", h>>24, h>>16&0xff, h)
		out[i] = filepath.Join(dir, "img", filepath.FromSlash(fan), names[i%len(names)])
	}
	return out
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkCleanerIndexMemory reports the index's memory per entry with a
// million entries (the paths the cache hands in are not counted).
func BenchmarkCleanerIndexMemory(b *testing.B) {
	const n = 1_000_000
	paths := benchPaths("/cache", n)
	for b.Loop() {
		before := heapInUse()
		c := newCleaner(cleanerOptions{Dir: "/cache"})
		for i, p := range paths {
			c.Touch(p, int64(1000+i))
		}
		after := heapInUse()
		if s := c.Stats(); s.Entries != n {
			b.Fatalf("Stats().Entries = %d, want %d", s.Entries, n)
		}
		b.ReportMetric(float64(after-before)/n, "bytes/entry")
		b.ReportMetric(float64(after-before)/(1<<20), "MiB/1M-entries")
		runtime.KeepAlive(c)
	}
	runtime.KeepAlive(paths)
}

// BenchmarkCleanerTouch reports the cost of a cache hit's Touch on an index
// of 100,000 entries, from all CPUs at once.
func BenchmarkCleanerTouch(b *testing.B) {
	paths := benchPaths("/cache", 100_000)
	c := newCleaner(cleanerOptions{Dir: "/cache"})
	for _, p := range paths {
		c.Touch(p, 1000)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Touch(paths[i%len(paths)], 1000)
			i += 7919
		}
	})
}

// BenchmarkCleanerPass100k walks a cache of 100,000 real entries (data and
// sidecar each) and runs a pass that deletes about half of them. Wall time
// depends on the disk and its load; the CPU figures show the cleaner's share.
func BenchmarkCleanerPass100k(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		paths := benchPaths(dir, n)
		for i, p := range paths {
			if i%4 == 0 {
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					b.Fatal(err)
				}
			}
			if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(p+sidecarSuffix, []byte(testMeta), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		esize := int64(len("data") + len(testMeta))
		b.StartTimer()

		start := time.Now()
		c := newCleaner(cleanerOptions{Dir: dir, MaxBytes: n * esize / 2})
		if err := c.walk(context.Background()); err != nil {
			b.Fatal(err)
		}
		walk := time.Since(start)
		user0, sys0 := cpuTime()
		st, err := c.Pass(context.Background())
		user1, sys1 := cpuTime()
		if err != nil || st.Deleted < n/2 {
			b.Fatalf("Pass() = %d deleted, %v; want >= %d, nil", st.Deleted, err, n/2)
		}
		b.ReportMetric(float64(walk.Milliseconds()), "walk-ms")
		b.ReportMetric(float64(st.Duration.Milliseconds()), "pass-ms")
		b.ReportMetric(float64(st.Deleted), "deleted")
		b.ReportMetric(float64(st.Duration.Nanoseconds())/float64(st.Deleted), "ns/delete")
		b.ReportMetric(float64((user1 - user0).Milliseconds()), "pass-user-ms")
		b.ReportMetric(float64((sys1 - sys0).Milliseconds()), "pass-sys-ms")
	}
}

func mustLookup(t *testing.T, x *lruIndex, rel string) uint32 {
	t.Helper()
	s, ok := x.lookup(rel)
	if !ok {
		t.Fatalf("lookup(%s) = false, want true", rel)
	}
	return s
}

// checkIndex fails unless every entry is findable and back in the heap (no
// pass left one out), and the byte total matches the entries.
func checkIndex(t *testing.T, c *Cleaner) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	x := c.idx
	var sum int64
	for s := range x.entries {
		e := x.entries[s]
		if got, ok := x.lookup(x.rel(uint32(s))); !ok || got != uint32(s) || e.pos < 0 {
			t.Fatalf("entry %s: lookup = %d, %v, heap pos %d; want %d, true, >= 0",
				x.rel(uint32(s)), got, ok, e.pos, s)
		}
		sum += e.size
	}
	if len(x.heap) != len(x.entries) || sum != x.bytes {
		t.Fatalf("heap %d of %d entries, bytes %d of %d; want all, equal",
			len(x.heap), len(x.entries), x.bytes, sum)
	}
}

func TestCleanerConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	const n = 200
	paths := make([]string, n)
	for i := range paths {
		paths[i], _ = writeEntry(t, dir, fmt.Sprintf("c/%d/%d.jpg", i%10, i), 100)
	}
	c := walked(t, cleanerOptions{Dir: dir, MaxBytes: 50 * 200, BatchSize: 3})
	ctx := context.Background()
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for range 2000 {
				p := paths[r.IntN(n)]
				switch r.IntN(4) {
				case 0:
					c.Forget(p)
				case 1:
					release := c.Acquire(p)
					c.Touch(p, 200)
					release()
				default:
					c.Touch(p, 200)
				}
			}
		}()
	}
	for range 20 {
		if _, err := c.Pass(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		<-done
	}
	checkIndex(t, c)
	if _, err := c.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	checkIndex(t, c)
	if s := c.Stats(); s.Bytes > 50*200 || s.Busy != 0 {
		t.Errorf("Stats() = %d bytes, %d busy; want <= %d, 0", s.Bytes, s.Busy, 50*200)
	}
}

func TestRunCleanOnceConfig(t *testing.T) {
	dir := t.TempDir()
	holder := filepath.Join(dir, "404.jpeg")
	writeFile(t, holder, 100, 72*time.Hour)
	var paths []string
	for i := range 4 {
		p, _ := writeEntry(t, dir, fmt.Sprintf("s/%d.jpg", i), 500-len(testMeta))
		setAge(t, p, time.Duration(4-i)*time.Hour)
		paths = append(paths, p)
	}
	cfg := defaultConfig()
	cfg.CacheDir, cfg.NotFoundSource = dir, holder
	cfg.CacheDirMaxUsage = 0 // the real filesystem's usage must not matter here
	cfg.CacheMaxBytes = 1100
	if err := runCleanOnce(context.Background(), cfg, nil); err != nil {
		t.Fatalf("runCleanOnce() = %v, want nil", err)
	}
	// 2000 bytes over 1100: down to 1045, so the two oldest go.
	for i, p := range paths {
		if got, want := fileExists(t, p), i >= 2; got != want {
			t.Errorf("fileExists(s/%d.jpg) = %v, want %v", i, got, want)
		}
	}
	if !fileExists(t, holder) {
		t.Errorf("runCleanOnce removed the placeholder %s", holder)
	}
}

func TestCleanerWriteInProgressSurvives(t *testing.T) {
	dir := t.TempDir()
	old, _ := writeEntry(t, dir, "img/old.jpg", 1000)
	tmpDir := filepath.Join(dir, ".katana", "tmp")
	if err := os.MkdirAll(tmpDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(tmpDir, tempFilePrefix+"*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	body := testData("img/new.jpg", 1<<20)
	if _, err := f.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}

	// Over budget while the write is half done: the old entry goes, the
	// temp file stays and the write completes.
	st, err := cleanOnce(context.Background(), cleanerOptions{Dir: dir, MaxBytes: 10})
	oldThere, tmpThere := fileExists(t, old), fileExists(t, f.Name())
	if err != nil || st.Deleted != 1 || oldThere || !tmpThere {
		t.Fatalf("cleanOnce() = %d deleted, %v; old exists %v, temp exists %v; "+
			"want 1, nil, false, true", st.Deleted, err, oldThere, tmpThere)
	}
	if _, err := f.Write(body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "img", "new.jpg")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("ReadFile(%s) = %d bytes, %v; want the %d bytes written",
			dst, len(got), err, len(body))
	}
}

func TestCleanerSourceGoesVariantStays(t *testing.T) {
	dir := t.TempDir()
	src, _ := writeEntry(t, dir, "a/b/source.png", 3000)
	variant, vsize := writeEntry(t, dir, "a/b/300x200_q75.webp", 1000)
	c := walked(t, cleanerOptions{Dir: dir, MaxBytes: 2 * vsize})
	c.Touch(src, 3000+int64(len(testMeta)))
	c.Touch(variant, vsize)
	st, err := c.Pass(context.Background())
	if err != nil || st.Deleted != 1 || fileExists(t, src) || fileExists(t, src+sidecarSuffix) {
		t.Fatalf("Pass() = %d deleted, %v; source exists %v; want 1, nil, false",
			st.Deleted, err, fileExists(t, src))
	}
	got, err := os.ReadFile(variant)
	if err != nil || !bytes.Equal(got, testData("a/b/300x200_q75.webp", 1000)) ||
		!fileExists(t, variant+sidecarSuffix) {
		t.Errorf("variant after its source went: %d bytes, %v; want its 1000 bytes and sidecar",
			len(got), err)
	}
}

// A write that found the disk full makes the next pass free room even below
// cache_dir_max_usage: a large file may not fit in what is left.
func TestCleanerMakesRoomAfterDiskFull(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := range 10 {
		p, _ := writeEntry(t, dir, fmt.Sprintf("%d.png", i), 10)
		paths = append(paths, p)
	}
	// 21 inodes of 35: 60%, under the 90% limit.
	c := walked(t, cleanerOptions{Dir: dir, MaxUsage: 90, LowWater: 85, BatchSize: 1,
		statfs: fakeStatfs(testFSSize, 35)})
	for _, p := range paths {
		c.Touch(p, 10)
	}
	if st, err := c.Pass(context.Background()); err != nil || st.Deleted != 0 {
		t.Fatalf("Pass() under the limit = %d deleted, %v; want 0, nil", st.Deleted, err)
	}
	c.DiskFull()
	st, err := c.Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Down to under 55% (5 points below 60%): 19/35 = 54% after one delete.
	if st.Deleted != 1 || st.UsageAfter >= 55 {
		t.Errorf("Pass() after DiskFull = %d deleted, usage %.1f; want 1 and under 55",
			st.Deleted, st.UsageAfter)
	}
	if fileExists(t, paths[0]) || !fileExists(t, paths[1]) {
		t.Error("the pass did not delete the least recently used entry")
	}
	if st, _ := c.Pass(context.Background()); st.Deleted != 0 {
		t.Errorf("a later pass deleted %d, want 0: the hint is used once", st.Deleted)
	}
}
