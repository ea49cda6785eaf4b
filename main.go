// Command katana is an HTTP caching proxy that resizes and converts images.
//
// It fetches files from origin clusters, keeps them in a disk cache, and
// serves resized or converted variants (JPEG, WebP, PNG) from URLs that
// config regexes describe, such as /img/cat.png/resize-300x200-f-q80.webp.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
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
			&cli.StringFlag{Name: "config", Aliases: []string{"c"},
				EnvVars: []string{"KATANA_CONFIG", "CONFIG_FILE"},
				Usage:   "config `FILE` (default ./katana.toml, then /etc/katana/katana.toml, then built in)"},
			&cli.StringFlag{Name: "listen", Aliases: []string{"start"}, Value: "0.0.0.0:8080",
				Usage: "listen on `ADDR` (host:port, [ipv6]:port, :port)"},
			&cli.StringFlag{Name: "origin",
				Usage: "serve the default origin from one `URL_OR_DIR` (http://host:port or a directory)"},
			&cli.BoolFlag{Name: "dump", Usage: "print the effective config as TOML and exit"},
			&cli.BoolFlag{Name: "check", Usage: "validate the config, list every problem, and exit"},
			&cli.StringFlag{Name: "admin",
				Usage: "admin listener `ADDR` (host:port; \"\" turns it off), instead of admin_listen"},
			&cli.BoolFlag{Name: "clean", Aliases: []string{"cleaner"},
				Usage: "run one cleaning pass and exit"},
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
	adjust := flagOverrides(c)
	cfg, src, err := loadConfigWith(path, adjust)
	if err != nil {
		return err
	}
	if c.IsSet("origin") && !cfg.usesOrigin("default") {
		src.Warnings = append(src.Warnings, "--origin replaces the default origin, "+
			"which no route of this config uses")
	}
	if c.Bool("dump") {
		return cfg.dump(stdout)
	}
	if c.Bool("check") || c.Bool("clean") || c.IsSet("sign") {
		return runOnce(ctx, c, cfg, src, stdout, stderr)
	}
	return serve(ctx, newDaemon(ctx, path, adjust, stderr), cfg, src, c.String("listen"))
}

// flagOverrides returns the change the command line makes to every config
// loaded, at start and on reload.
func flagOverrides(c *cli.Context) func(*Config) {
	origin, admin, adminSet := c.String("origin"), c.String("admin"), c.IsSet("admin")
	return func(cfg *Config) {
		if origin != "" {
			cfg.Origins["default"] = map[string]*ClusterConfig{"default": {IPs: []string{origin}}}
		}
		if adminSet {
			cfg.AdminListen = admin
		}
	}
}

// runOnce is --check, --clean or --sign.
func runOnce(ctx context.Context, c *cli.Context, cfg *Config, src configSource,
	stdout, stderr io.Writer) error {
	logs, err := newLogging(cfg.Logging, stderr)
	if err != nil {
		return err
	}
	defer logs.Close()
	log := logs.logger("katana.server")
	for _, w := range src.Warnings {
		log.Warn("config", "warning", w)
	}
	if c.IsSet("sign") {
		return printSignedPath(stdout, cfg, c.String("sign"))
	}
	if c.Bool("clean") {
		return runCleanOnce(ctx, cfg, logs.logger("katana.cleaner"))
	}
	s, err := newServer(cfg, log)
	if err != nil {
		return err
	}
	s.Close()
	fmt.Fprintf(stdout, "config %s: ok\n", configName(src))
	return nil
}

// serve runs the HTTP server and the admin listener until ctx ends or
// SIGINT or SIGTERM, then drains them within shutdown_grace. SIGHUP reloads
// the config; SIGUSR1 reopens the log files.
func serve(ctx context.Context, d *daemon, cfg *Config, src configSource, addr string) error {
	g, err := d.build(cfg, src)
	if err != nil {
		return err
	}
	ln, aln, err := listenBoth(addr, cfg.AdminListen)
	if err != nil {
		g.discard()
		return err
	}
	d.activate(g)
	defer d.close()
	// Compile the WebP codec now rather than in the first request (~200 ms).
	go webpInit()
	if os.Getenv("GOMEMLIMIT") == "" {
		// The Go heap aims below the budget, leaving room for what the
		// runtime cannot count (code, stacks, the WebP codec's compiled code).
		debug.SetMemoryLimit(cfg.memoryBudget() / 100 * 85)
	}
	if os.Getenv("GOGC") == "" {
		gcPace.enable()
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					gcPace.tune()
				}
			}
		}()
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, serveSignals...)
	defer signal.Stop(sigs)
	srv := d.httpServer(cfg)
	loop := newHTTPLoop(stallListener(ln, cfg.WriteTimeout.Duration), srv.Handler, srv)
	srvs := []stopper{loop, srv}
	errc := serveOn(srv, loop.Listener())
	var adminErrc <-chan error // nil blocks: no admin listener
	if aln != nil {
		admin := &http.Server{Handler: newAdminHandler(d.handler.server, d.metrics),
			ReadHeaderTimeout: cfg.ReadHeaderTimeout.Duration, ErrorLog: d.errorLog()}
		srvs = append(srvs, admin)
		adminErrc = serveOn(admin, aln)
	}
	g.log.Info("listening", "addr", ln.Addr().String(), "admin", adminAddr(aln),
		"config", configName(src), "cache_dir", g.s.cache.dir, "version", version)
	if err := sdNotify("READY=1"); err != nil {
		g.log.Warn("telling systemd we are ready", "err", err)
	}

	err = d.wait(ctx, sigs, errc, adminErrc)
	sdNotify("STOPPING=1")
	log := d.handler.cur.Load().log // the config in use now, after any reload
	log.Info("shutting down", "grace", cfg.ShutdownGrace.Duration)
	shutdown(log, cfg.ShutdownGrace.Duration, srvs...)
	return err
}

// listenBoth opens the public listener and, unless adminAddr is empty, the
// admin one.
func listenBoth(addr, adminAddr string) (ln, admin net.Listener, err error) {
	if ln, err = listen(addr); err != nil {
		return nil, nil, err
	}
	if adminAddr == "" {
		return ln, nil, nil
	}
	if admin, err = net.Listen("tcp", adminAddr); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("admin_listen %s: %w", adminAddr, err)
	}
	return ln, admin, nil
}

func adminAddr(ln net.Listener) string {
	if ln == nil {
		return "off"
	}
	return ln.Addr().String()
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
