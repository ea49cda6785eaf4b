// cleanerwire.go starts the cleaner beside the server and connects it to
// the cache, so that every store and hit counts as an access.
package main

import (
	"context"
	"log/slog"
)

// startCleaner runs the cleaner for cfg in the background and hooks it to
// the server's cache. stop ends it and waits for it.
func startCleaner(ctx context.Context, cfg *Config, s *server, log *slog.Logger) (stop func()) {
	opt := cleanerOptionsFor(cfg, log)
	opt.Evicted = s.cache.forget
	c := newCleaner(opt)
	s.cache.touch = c.TouchRel
	s.cache.acquire = c.Acquire
	s.cleaner = c
	return c.start(ctx)
}
