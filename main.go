// Command katana is an HTTP caching proxy that resizes and converts images.
//
// It fetches files from origin clusters, keeps them in a disk cache, and
// serves resized or converted variants (JPEG, WebP, PNG) from URLs that
// config regexes describe, such as /img/cat.png/resize-300x200-f-q80.webp.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
)

func main() {
	if err := newApp(os.Stdout, os.Stderr).Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "katana:", err)
		os.Exit(1)
	}
}

// newApp describes the command line.
func newApp(stdout, stderr io.Writer) *cli.App {
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Fprintf(c.App.Writer, "katana %s %s %s/%s\n", version, runtime.Version(),
			runtime.GOOS, runtime.GOARCH)
	}
	return &cli.App{
		Name:      "katana",
		Usage:     "HTTP caching proxy that resizes and converts images",
		Version:   version,
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"KATANA_CONFIG", "CONFIG_FILE"},
				Usage: "config `FILE` (default ./katana.toml, then /etc/katana/katana.toml, then built in)"},
			&cli.StringFlag{Name: "listen", Aliases: []string{"start"}, Value: "0.0.0.0:8080",
				Usage: "listen on `ADDR` (host:port, [ipv6]:port, :port)"},
			&cli.StringFlag{Name: "origin",
				Usage: "serve the default origin from one `URL_OR_DIR` (http://host:port or a directory)"},
			&cli.BoolFlag{Name: "dump", Usage: "print the effective config as TOML and exit"},
			&cli.BoolFlag{Name: "check", Usage: "validate the config, list every problem, and exit"},
			&cli.BoolFlag{Name: "clean", Aliases: []string{"cleaner"}, Usage: "run one cleaning pass and exit"},
			&cli.StringFlag{Name: "sign", Usage: "print `PATH` signed with the first signature_key; " +
				"{signature} in PATH marks where the signature goes"},
		},
		Action: func(c *cli.Context) error {
			return run(c.Context, c, stdout, stderr)
		},
		HideHelpCommand: true,
	}
}

// run loads the config and does what the flags ask. Its deferred cleanups
// run before main exits.
func run(ctx context.Context, c *cli.Context, stdout, stderr io.Writer) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see --help)", c.Args().First())
	}
	path := findConfig(c.String("config"))
	cfg, src, err := loadConfigWith(path, func(cfg *Config) {
		if o := c.String("origin"); o != "" {
			cfg.Origins["default"] = map[string]*ClusterConfig{"default": {IPs: []string{o}}}
		}
	})
	if err != nil {
		return err
	}
	logs, err := newLogging(cfg.Logging, stderr)
	if err != nil {
		return err
	}
	defer logs.Close()
	log := logs.logger("katana.server")
	for _, w := range src.Warnings {
		log.Warn("config", "warning", w)
	}

	switch {
	case c.Bool("dump"):
		return cfg.dump(stdout)
	case c.Bool("check"):
		s, err := newServer(cfg, log)
		if err != nil {
			return err
		}
		s.Close()
		fmt.Fprintf(stdout, "config %s: ok\n", configName(src))
		return nil
	case c.IsSet("sign"):
		return printSignedPath(stdout, cfg, c.String("sign"))
	case c.Bool("clean"):
		return runCleanOnce(ctx, cfg, logs.logger("katana.cleaner"))
	}
	return serve(ctx, cfg, src, c.String("listen"), logs)
}

// serve runs the HTTP server until SIGINT or SIGTERM, then drains it.
func serve(ctx context.Context, cfg *Config, src configSource, addr string, logs *logging) error {
	log := logs.logger("katana.server")
	s, err := newServer(cfg, log)
	if err != nil {
		return err
	}
	defer s.Close()
	// Compile the WebP codec now rather than in the first request (~200 ms).
	go webpInit()
	stopCleaner := startCleaner(ctx, cfg, s, logs.logger("katana.cleaner"))
	defer stopCleaner()

	ln, err := listen(addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String(), "config", configName(src),
		"cache_dir", s.cache.dir, "version", version)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// listen opens addr; a bare host or IP gets port 8080.
func listen(addr string) (net.Listener, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "8080")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

func configName(src configSource) string {
	if src.Path == "" {
		return "(built in)"
	}
	return src.Path
}
