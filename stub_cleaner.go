// stub_cleaner.go is a stand-in for cleaner.go while it is being written.
package main

import (
	"context"
	"log/slog"
)

func startCleaner(ctx context.Context, cfg *Config, s *server, log *slog.Logger) (stop func()) {
	return func() {}
}

func runCleanOnce(ctx context.Context, cfg *Config, log *slog.Logger) error { return nil }
