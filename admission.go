// admission.go admits image jobs by the memory they will need, so that many
// large images at once wait or fail fast instead of exhausting the process.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// Admission errors: errBusy answers an image job that would wait behind too
// many others (503 with Retry-After); errJobTooLarge one whose memory alone
// is over the budget (422).
var (
	errBusy        = errors.New("too many image jobs waiting")
	errJobTooLarge = errors.New("image job needs more memory than max_memory allows")
)

// admissionShare is the part of max_memory that image jobs may reserve; the
// rest is headroom for the garbage collector, connections and buffers.
const admissionShare = 0.6

// admission bounds image work twice: by estimated memory, and by CPU (no
// more jobs at once than cores, since more would only share them). It is
// safe for concurrent use.
type admission struct {
	mem      *semaphore.Weighted
	cpu      *semaphore.Weighted
	capacity int64 // bytes the memory semaphore holds
	maxWait  int64 // jobs allowed to wait; more fail with errBusy

	waiting  atomic.Int64
	running  atomic.Int64
	reserved atomic.Int64 // bytes held by running jobs
}

func newAdmission(maxMemory int64, maxWait int) *admission {
	capacity := max(int64(float64(maxMemory)*admissionShare), 64<<20)
	return &admission{
		mem:      semaphore.NewWeighted(capacity),
		cpu:      semaphore.NewWeighted(int64(runtime.GOMAXPROCS(0))),
		capacity: capacity,
		maxWait:  int64(maxWait),
	}
}

// acquire waits, with ctx, until need bytes and a core are free. A job
// larger than the whole budget is refused: running it alone would still
// break the budget. release must be called once.
func (a *admission) acquire(ctx context.Context, need int64) (release func(), err error) {
	if need > a.capacity {
		return nil, fmt.Errorf("%w: %d MiB of %d", errJobTooLarge, need>>20, a.capacity>>20)
	}
	need = max(need, 1)
	if a.waiting.Add(1) > a.maxWait {
		a.waiting.Add(-1)
		return nil, errBusy
	}
	err = a.mem.Acquire(ctx, need)
	if err == nil {
		if err = a.cpu.Acquire(ctx, 1); err != nil {
			a.mem.Release(need)
		}
	}
	a.waiting.Add(-1)
	if err != nil {
		return nil, err
	}
	a.running.Add(1)
	a.reserved.Add(need)
	gcPace.jobStarted()
	return func() {
		gcPace.jobEnded()
		a.reserved.Add(-need)
		a.running.Add(-1)
		a.cpu.Release(1)
		a.mem.Release(need)
	}, nil
}

// gcPace sets the collector's pacing for the whole process.
var gcPace gcPacing

// GC pacing: the default percent while image jobs run, which make large
// short-lived buffers; while only hits are served, whose garbage is small
// and fast (a collection every few megabytes of it cost a hit a fifth of
// its time), up to gcPercentHits, as long as the heap may then grow by no
// more than gcHitsHeadroom over what is live. The memory limit bounds the
// heap either way.
const (
	gcPercentJobs  = 100
	gcPercentHits  = 400
	gcHitsHeadroom = 64 << 20
)

// gcPacing switches the GC percent as image jobs start and end, and as the
// live heap changes (tune). The zero value only counts jobs; enable makes it
// set the percent. It is safe for concurrent use.
type gcPacing struct {
	mu      sync.Mutex // guards the fields below; held while the percent is set
	on      bool
	jobs    int
	percent int                // last set; 0 before
	live    []rtmetrics.Sample // the live heap, read in setLocked
}

func (p *gcPacing) enable() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.on = true
	p.setLocked()
}

func (p *gcPacing) jobStarted() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.jobs++; p.jobs == 1 {
		p.setLocked()
	}
}

func (p *gcPacing) jobEnded() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.jobs--; p.jobs == 0 {
		p.setLocked()
	}
}

// tune sets the percent again from the live heap, which the last
// collections measured; the daemon calls it every second.
func (p *gcPacing) tune() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setLocked()
}

func (p *gcPacing) setLocked() {
	if !p.on {
		return
	}
	percent := gcPercentJobs
	if p.jobs == 0 {
		percent = hitsPercent(p.liveHeap())
	}
	if percent != p.percent {
		debug.SetGCPercent(percent)
		p.percent = percent
	}
}

// hitsPercent is the GC percent for hits over a live heap of live bytes.
func hitsPercent(live uint64) int {
	if live == 0 {
		return gcPercentJobs
	}
	return int(min(max(100*gcHitsHeadroom/live, gcPercentJobs), gcPercentHits))
}

// liveHeap returns the heap the last collection found live, in bytes.
func (p *gcPacing) liveHeap() uint64 {
	if p.live == nil {
		p.live = []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	}
	rtmetrics.Read(p.live)
	if p.live[0].Value.Kind() != rtmetrics.KindUint64 {
		return 0
	}
	return p.live[0].Value.Uint64()
}

// defaultMaxMemory is a quarter of the memory this process may use: the
// cgroup limit when there is one (containers, systemd MemoryMax), else the
// machine's RAM, else 1 GiB when neither can be read.
func defaultMaxMemory() int64 {
	total := machineMemory()
	if limit := cgroupMemoryLimit(); limit > 0 && (total == 0 || limit < total) {
		total = limit
	}
	if total <= 0 {
		return 1 << 30
	}
	return total / 4
}

// machineMemory reads MemTotal from /proc/meminfo; 0 when unknown.
func machineMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cgroupMemoryLimit reads the cgroup v2 (or v1) memory limit; 0 when there
// is none.
func cgroupMemoryLimit() int64 {
	for _, p := range []string{"/sys/fs/cgroup/memory.max",
		"/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err == nil && v > 0 && v < 1<<60 {
			return v
		}
	}
	return 0
}
