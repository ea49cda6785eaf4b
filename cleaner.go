// cleaner.go owns eviction: the goroutine that keeps the cache disk under its limits.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	errStatfsUnsupported = errors.New("statfs is not supported on this system")
	errNoCacheDir        = errors.New("cleaner: no cache directory")
)

const (
	sidecarSuffix     = ".META"
	tempFilePrefix    = ".tmp-"
	defaultTempGrace  = time.Hour
	defaultCleanEvery = 60 * time.Second
	defaultBatchSize  = 100
	// bytesLowWater is the share of MaxBytes a pass brings Katana's files to.
	bytesLowWater = 0.95
	// defaultGrowthStep is the growth that triggers an early check until a
	// statfs tells the filesystem's size.
	defaultGrowthStep = 64 << 20
)

// cleanerOptions configures a Cleaner. The zero value of each field is
// described with it; Dir is required.
type cleanerOptions struct {
	Dir       string        // cache_dir
	MaxUsage  float64       // cache_dir_max_usage, percent (blocks or inodes); <= 0 is off
	LowWater  float64       // clean_low_water, percent; 0 means MaxUsage-5
	MaxBytes  int64         // cache_max_bytes: budget for Katana's own files; 0 = off
	BatchSize int           // clean_batch_size; 0 means 100
	Every     time.Duration // clean_every; 0 means 60s
	TempGrace time.Duration // age after which a .tmp-* file is a leftover; 0 = 1h
	Protect   []string      // paths never removed (the placeholder)
	Logger    *slog.Logger  // nil discards
	// Evicted is told the relative path (with slashes) of every entry a
	// pass deleted, so that copies kept in memory go too; nil is none.
	Evicted func(rel string)
	// GrowthStep is how many bytes of new cache files make Run check usage
	// before the next tick; 0 means 1% of the filesystem (or of MaxBytes).
	GrowthStep int64

	statfs func(dir string) (fsUsage, error) // nil = the real statfs; tests inject
}

// fsUsage is what statfs reports about a filesystem. BlocksFree counts
// blocks reserved for root, BlocksAvail does not; usage is computed like df.
type fsUsage struct {
	Blocks, BlocksFree, BlocksAvail uint64
	Files, FilesFree                uint64
	BlockSize                       int64
}

// percent returns the block and inode usage in percent, as df shows them:
// used / (used + available to users). A count of zero gives zero.
func (u fsUsage) percent() (blocks, inodes float64) {
	used := u.Blocks - u.BlocksFree
	if d := used + u.BlocksAvail; d > 0 {
		blocks = 100 * float64(used) / float64(d)
	}
	if u.Files > 0 {
		inodes = 100 * float64(u.Files-u.FilesFree) / float64(u.Files)
	}
	return blocks, inodes
}

// max is the larger of block and inode usage, the figure compared with
// MaxUsage and LowWater.
func (u fsUsage) max() float64 {
	b, i := u.percent()
	return max(b, i)
}

// cleanerStats is a snapshot for metrics.
type cleanerStats struct {
	Entries      int       // files in the index
	Bytes        int64     // their total size, data plus sidecar
	Busy         int       // files acquired by readers now
	Indexed      bool      // the start-up walk has finished
	Usage        float64   // max(block, inode) percent at the last measure
	Evictions    uint64    // files deleted to free space, since start
	EvictedBytes int64     // their bytes
	Leftovers    uint64    // stale temp files, orphan sidecars, empty dirs removed
	Failures     uint64    // deletes that failed (the file stays indexed)
	Passes       uint64    // passes run
	LastPass     time.Time // when the last pass ended; zero before the first
	LastDuration time.Duration
}

// Cleaner keeps the cache directory under its usage limits by deleting the
// least recently used files. Its methods are safe for concurrent use; Touch,
// Acquire and Forget only take a short lock and never do I/O. The zero value
// is not usable: make one with newCleaner.
type Cleaner struct {
	opt     cleanerOptions
	root    string // absolute, cleaned cache directory
	prefix  string // root with a trailing separator
	cwd     string // to make relative paths absolute without a syscall
	protect map[string]bool
	log     *slog.Logger
	kick    chan struct{} // a large growth asks Run for an early check
	full    atomic.Bool   // a write failed for want of space: make room even under MaxUsage

	passMu sync.Mutex // one pass at a time

	mu        sync.Mutex // guards the fields below
	idx       *lruIndex
	busy      map[string]int32 // relative path -> open readers
	leftovers []leftover       // found by the walk, removed by passes
	clock     int64            // last access time handed out, unix ns
	grown     int64            // bytes stored since the last kick
	fsBytes   int64            // size of the filesystem at the last measure
	stats     cleanerStats
}

// newCleaner returns a Cleaner for opt. It does no I/O: call Run, or Pass
// after walk, to start working.
func newCleaner(opt cleanerOptions) *Cleaner {
	opt = opt.withDefaults()
	cwd, _ := os.Getwd()
	c := &Cleaner{
		opt:     opt,
		cwd:     cwd,
		protect: make(map[string]bool),
		log:     opt.Logger,
		kick:    make(chan struct{}, 1),
		idx:     newLRUIndex(),
		busy:    make(map[string]int32),
	}
	if opt.Dir != "" {
		c.root = c.abs(opt.Dir)
		c.prefix = c.root
		if !strings.HasSuffix(c.prefix, string(os.PathSeparator)) {
			c.prefix += string(os.PathSeparator)
		}
	}
	for _, p := range opt.Protect {
		c.protect[c.abs(p)] = true
	}
	return c
}

func (o cleanerOptions) withDefaults() cleanerOptions {
	if o.LowWater <= 0 {
		o.LowWater = max(o.MaxUsage-5, 0)
	}
	o.LowWater = min(o.LowWater, o.MaxUsage)
	if o.BatchSize <= 0 {
		o.BatchSize = defaultBatchSize
	}
	if o.Every <= 0 {
		o.Every = defaultCleanEvery
	}
	if o.TempGrace <= 0 {
		o.TempGrace = defaultTempGrace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.statfs == nil {
		o.statfs = sysStatfs
	}
	return o
}

// abs cleans p and makes it absolute against the working directory seen at
// start, so that walk and run-time paths give the same key (spec B15).
func (c *Cleaner) abs(p string) string {
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.cwd, p)
	}
	return filepath.Clean(p)
}

// relOf returns p relative to the cache directory, or false when p is the
// directory itself or lies outside it.
func (c *Cleaner) relOf(p string) (string, bool) {
	a := c.abs(p)
	if c.prefix == "" || !strings.HasPrefix(a, c.prefix) {
		return "", false
	}
	return a[len(c.prefix):], true
}

// indexable reports whether rel names a cache entry (not a sidecar, a temp
// file or a protected path).
func (c *Cleaner) indexable(rel string) bool {
	_, name := splitRel(rel)
	if strings.HasSuffix(name, sidecarSuffix) || strings.HasPrefix(name, tempFilePrefix) {
		return false
	}
	return !c.protect[c.prefix+rel]
}

// tickLocked returns a strictly increasing access time, so that accesses in a
// row keep their order even with a coarse clock. c.mu must be held.
func (c *Cleaner) tickLocked() int64 {
	c.clock = max(time.Now().UnixNano(), c.clock+1)
	return c.clock
}

// Touch records an access (a cache hit) or a store of path with its size in
// bytes (data + sidecar). Paths outside the cache directory, sidecars, temp
// files and protected paths are ignored.
func (c *Cleaner) Touch(path string, size int64) {
	if rel, ok := c.relOf(path); ok {
		c.touchRel(rel, size)
	}
}

// TouchRel is Touch for a path relative to the cache directory, with
// slashes, as the cache names its entries.
func (c *Cleaner) TouchRel(rel string, size int64) { c.touchRel(filepath.FromSlash(rel), size) }

func (c *Cleaner) touchRel(rel string, size int64) {
	if !c.indexable(rel) {
		return
	}
	c.mu.Lock()
	grew := c.idx.put(rel, size, c.tickLocked(), false)
	fire := c.growLocked(grew)
	c.mu.Unlock()
	if fire {
		c.wake()
	}
}

// Grew reports n new bytes in the cache that Touch does not see. Once the
// growth since the last early check passes the growth step, Run checks
// usage without waiting for its next tick.
func (c *Cleaner) Grew(n int64) {
	c.mu.Lock()
	fire := c.growLocked(n)
	c.mu.Unlock()
	if fire {
		c.wake()
	}
}

// growLocked adds n bytes of growth and reports whether it is time for an
// early check. c.mu must be held.
func (c *Cleaner) growLocked(n int64) bool {
	if n <= 0 {
		return false
	}
	c.grown += n
	if c.grown < c.growthStepLocked() {
		return false
	}
	c.grown = 0
	return true
}

// wake asks Run for a pass without blocking; one pending request is enough.
// DiskFull reports that a write failed for want of space. The next pass,
// started at once, frees room even when usage is under cache_dir_max_usage
// (a large file may not fit in what is left below it): down to the low-water
// mark, or 5 points under the current usage when that is lower. Safe for
// concurrent use; it never blocks.
func (c *Cleaner) DiskFull() {
	c.full.Store(true)
	c.wake()
}

func (c *Cleaner) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// growthStepLocked is GrowthStep, or 1% of the filesystem last measured, or
// of MaxBytes when that is smaller. c.mu must be held.
func (c *Cleaner) growthStepLocked() int64 {
	if c.opt.GrowthStep > 0 {
		return c.opt.GrowthStep
	}
	step := int64(defaultGrowthStep)
	if c.fsBytes > 0 {
		step = c.fsBytes / 100
	}
	if c.opt.MaxBytes > 0 {
		step = min(step, c.opt.MaxBytes/100)
	}
	return max(step, 1)
}

// Acquire marks path as being read by a client until release is called;
// the cleaner never deletes a file that is acquired. release may be called
// more than once; only the first call counts.
func (c *Cleaner) Acquire(path string) (release func()) {
	rel, ok := c.relOf(path)
	if !ok {
		return func() {}
	}
	c.mu.Lock()
	c.busy[rel]++
	c.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { c.releaseBusy(rel) }) }
}

func (c *Cleaner) releaseBusy(rel string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busy[rel]--; c.busy[rel] <= 0 {
		delete(c.busy, rel)
	}
}

// Forget drops path from the index (the cache removed or replaced it itself).
func (c *Cleaner) Forget(path string) {
	rel, ok := c.relOf(path)
	if !ok {
		return
	}
	c.mu.Lock()
	c.idx.remove(rel)
	c.mu.Unlock()
}

// Stats reports index size, bytes indexed, evictions and the last pass.
func (c *Cleaner) Stats() cleanerStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries, s.Bytes, s.Busy = c.idx.len(), c.idx.bytes, len(c.busy)
	return s
}

// Run rebuilds the index in the background by walking the cache directory
// (using file times as the last access), then checks usage every
// opt.Every and soon after Grew reports a large growth. Passes wait for the
// walk, so the LRU order they use is complete. Run returns when ctx is done.
func (c *Cleaner) Run(ctx context.Context) {
	walked := make(chan error, 1)
	go func() { walked <- c.walk(ctx) }()
	t := time.NewTicker(c.opt.Every)
	defer t.Stop()

	ready := false
	for {
		select {
		case <-ctx.Done():
			if !ready {
				<-walked
			}
			return
		case err := <-walked:
			ready = true
			if err != nil && ctx.Err() == nil {
				c.log.Error("cache index walk failed", "dir", c.root, "err", err)
			}
			c.runPass(ctx)
		case <-t.C:
			if ready {
				c.runPass(ctx)
			}
		case <-c.kick:
			if ready {
				c.runPass(ctx)
			}
		}
	}
}

// start runs Run in its own goroutine. stop cancels it and waits until it
// has returned; it may be called more than once.
func (c *Cleaner) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

func (c *Cleaner) runPass(ctx context.Context) {
	if _, err := c.Pass(ctx); err != nil && ctx.Err() == nil {
		c.log.Error("cache clean pass failed", "dir", c.root, "err", err)
	}
}

// cleanerOptionsFor maps the config keys onto cleaner options; log is the
// "katana.cleaner" logger.
func cleanerOptionsFor(cfg *Config, log *slog.Logger) cleanerOptions {
	opt := cleanerOptions{
		Dir:       cfg.CacheDir,
		MaxUsage:  cfg.CacheDirMaxUsage,
		LowWater:  cfg.CleanLowWater,
		MaxBytes:  cfg.CacheMaxBytes,
		BatchSize: cfg.CleanBatchSize,
		Every:     cfg.CleanEvery.Duration,
		Logger:    log,
	}
	if cfg.NotFoundSource != "" {
		opt.Protect = []string{cfg.NotFoundSource}
	}
	return opt
}

// runCleanOnce is `katana --clean`: one walk and one pass with cfg's
// settings. The pass logs what it did.
func runCleanOnce(ctx context.Context, cfg *Config, log *slog.Logger) error {
	_, err := cleanOnce(ctx, cleanerOptionsFor(cfg, log))
	return err
}

// cleanOnce is what `katana --clean` runs: walk, then one pass, synchronously.
func cleanOnce(ctx context.Context, opt cleanerOptions) (passStats, error) {
	c := newCleaner(opt)
	if err := c.walk(ctx); err != nil {
		return passStats{}, err
	}
	return c.Pass(ctx)
}
