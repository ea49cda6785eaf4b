package main

import (
	"context"
	"errors"
	"runtime/debug"
	"testing"
	"time"
)

func TestAdmissionBoundsMemoryAndQueue(t *testing.T) {
	a := newAdmission(200<<20, 1) // 120 MiB for jobs, one may wait
	big := int64(100 << 20)
	release, err := a.acquire(context.Background(), big)
	if err != nil {
		t.Fatal(err)
	}
	// A second big job waits for memory; a third finds the queue full.
	got := make(chan error, 1)
	go func() {
		r, err := a.acquire(context.Background(), big)
		if err == nil {
			r()
		}
		got <- err
	}()
	for a.waiting.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	if _, err := a.acquire(context.Background(), big); !errors.Is(err, errBusy) {
		t.Errorf("third job: err = %v, want errBusy", err)
	}
	if a.reserved.Load() != big || a.running.Load() != 1 {
		t.Errorf("reserved %d, running %d; want %d and 1", a.reserved.Load(), a.running.Load(), big)
	}
	release()
	if err := <-got; err != nil {
		t.Errorf("waiting job: %v", err)
	}

	// A job larger than the whole budget is refused: alone, it would still
	// break the budget.
	if _, err := a.acquire(context.Background(), 10<<30); !errors.Is(err, errJobTooLarge) {
		t.Errorf("oversized job: err = %v, want errJobTooLarge", err)
	}
	// A job waits, with its context, for memory to free up.
	r, err := a.acquire(context.Background(), a.capacity)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := a.acquire(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("job behind a full budget: err = %v, want the context's", err)
	}
	r()
}

func TestJobMemoryGrowsWithTheImage(t *testing.T) {
	small := jobMemory(&sourceInfo{format: "png", width: 100, height: 100, frames: 1},
		imageOptions{Width: 50, Format: "png"})
	large := jobMemory(&sourceInfo{format: "png", width: 4000, height: 3000, frames: 1},
		imageOptions{Width: 50, Format: "png"})
	webp := jobMemory(&sourceInfo{format: "png", width: 4000, height: 3000, frames: 1},
		imageOptions{Width: 1200, Format: "webp", Lossless: true})
	if !(small < large && large < webp) || large < 4000*3000*8 {
		t.Errorf("jobMemory: small %d, large %d, lossless WebP %d", small, large, webp)
	}
}

func TestDefaultMaxMemory(t *testing.T) {
	if m := defaultMaxMemory(); m < 64<<20 {
		t.Errorf("defaultMaxMemory() = %d, want at least 64 MiB", m)
	}
}

func TestGCPacingFollowsImageJobs(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	var p gcPacing
	percent := func() int { v := debug.SetGCPercent(-1); debug.SetGCPercent(v); return v }
	p.jobStarted() // before enable: counted, percent left alone
	if got := percent(); got != 100 {
		t.Fatalf("percent before enable = %d, want 100", got)
	}
	p.enable()
	if got := percent(); got != gcPercentJobs {
		t.Errorf("percent with a job running = %d, want %d", got, gcPercentJobs)
	}
	p.jobStarted()
	p.jobEnded()
	if got := percent(); got != gcPercentJobs {
		t.Errorf("percent with one of two jobs ended = %d, want %d", got, gcPercentJobs)
	}
	p.jobEnded()
	if got, want := percent(), hitsPercent(p.liveHeap()); got != want {
		t.Errorf("percent with no job = %d, want %d", got, want)
	}
}

func TestHitsPercentBoundsTheHeadroom(t *testing.T) {
	for _, tt := range []struct {
		live uint64
		want int
	}{
		{0, gcPercentJobs},
		{1 << 20, gcPercentHits},
		{16 << 20, 400},
		{32 << 20, 200},
		{64 << 20, 100},
		{1 << 30, gcPercentJobs},
	} {
		if got := hitsPercent(tt.live); got != tt.want {
			t.Errorf("hitsPercent(%d MiB) = %d, want %d", tt.live>>20, got, tt.want)
		}
	}
}
