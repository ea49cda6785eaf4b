// config.go owns the configuration: its type, defaults, loading and validation.
package main

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the whole configuration of a Katana process. Keys keep the names of
// the original program's settings. A Config is read-only once loaded and is safe
// for concurrent use.
type Config struct {
	// Origins maps an origin name to its clusters, by cluster name.
	Origins map[string]map[string]*ClusterConfig `toml:"origins"`
	// Routing is the ordered list of routes; the first whose regex matches wins.
	Routing []*RouteConfig `toml:"routing"`

	// CacheDir is the directory that holds cached files and their sidecars.
	CacheDir string `toml:"cache_dir"`
	// CacheDirMaxUsage is the block or inode usage of the cache filesystem, in
	// percent, above which the cleaner deletes files.
	CacheDirMaxUsage float64 `toml:"cache_dir_max_usage"`
	// CleanLowWater is the usage, in percent, a cleaning pass brings the
	// filesystem down to. Zero means CacheDirMaxUsage minus 5.
	CleanLowWater float64 `toml:"clean_low_water"`
	// CacheMaxBytes is a budget for Katana's own files in bytes; zero is off.
	CacheMaxBytes int64 `toml:"cache_max_bytes"`
	// CleanBatchSize is how many files one cleaning batch deletes at most.
	CleanBatchSize int `toml:"clean_batch_size"`
	// CleanEvery is the interval between usage checks.
	CleanEvery Duration `toml:"clean_every"`

	// NotFoundAs200 answers a missing image with NotFoundSource, resized.
	NotFoundAs200 bool `toml:"not_found_as_200"`
	// NotFoundSource is the placeholder image file.
	NotFoundSource string `toml:"not_found_source"`

	// ChunkSize is the read size, in bytes, for origin bodies.
	ChunkSize int `toml:"chunk_size"`
	// OriginFetchTimeout bounds a whole GET from an origin, body included.
	OriginFetchTimeout Duration `toml:"origin_fetch_timeout"`
	// OriginTimeout bounds the HEAD probes that locate a file.
	OriginTimeout Duration `toml:"origin_timeout"`
	// MaxSourceBytes is the largest origin body accepted, in bytes.
	MaxSourceBytes int64 `toml:"max_source_bytes"`
	// Proxy is an HTTP proxy (host:port or URL) for origin requests; empty is none.
	Proxy string `toml:"proxy"`

	// ThumbMaxWidth and ThumbMaxHeight clamp requested sizes, in pixels.
	ThumbMaxWidth  int `toml:"thumb_max_width"`
	ThumbMaxHeight int `toml:"thumb_max_height"`
	// ThumbMaxQuality clamps requested quality to [1, ThumbMaxQuality].
	ThumbMaxQuality int `toml:"thumb_max_quality"`
	// ThumbDefaultQuality is used when a URL gives no quality.
	ThumbDefaultQuality int `toml:"thumb_default_quality"`
	// MaxSourcePixels refuses sources with more pixels (width × height).
	MaxSourcePixels int64 `toml:"max_source_pixels"`
	// MaxAnimationPixels refuses animations whose frames × width × height exceed it.
	MaxAnimationPixels int64 `toml:"max_animation_pixels"`
	// Background is the colour transparent pixels become in JPEG output,
	// as "#rrggbb" or "white" / "black".
	Background string `toml:"background"`
	// WebPMethod is the WebP encoder's speed/size trade-off, 0 (fast) to 6.
	WebPMethod int `toml:"webp_method"`
	// MaxMemory bounds the memory of the process in bytes: image jobs are
	// admitted by their estimated memory within it, and the garbage
	// collector aims below it. Zero means a quarter of the RAM (or of the
	// cgroup limit).
	MaxMemory int64 `toml:"max_memory"`
	// MaxQueue is how many image jobs may wait for memory; more get 503.
	MaxQueue int `toml:"max_queue"`

	// ExternalExpires caps how long an entry is trusted without revalidation
	// and is the least lifetime advertised to clients. Zero turns both off.
	ExternalExpires Duration `toml:"external_expires"`
	// CacheForceExpires replaces the origin's lifetime with CacheDefaultExpires.
	CacheForceExpires bool `toml:"cache_force_expires"`
	// CacheDefaultExpires is the lifetime of a response that states none.
	CacheDefaultExpires Duration `toml:"cache_default_expires"`
	// ServeStaleOnError serves a stale copy when the origin fails or times
	// out, for at most MaxStaleOnError past its expiry, unless the response
	// forbids it (must-revalidate, proxy-revalidate, s-maxage, no-cache).
	ServeStaleOnError bool     `toml:"serve_stale_on_error"`
	MaxStaleOnError   Duration `toml:"max_stale_on_error"`

	// AccelRedirect answers hits with an empty body and X-Accel-Redirect.
	AccelRedirect bool `toml:"accel_redirect"`
	// AccelRedirectPath prefixes the X-Accel-Redirect value.
	AccelRedirectPath string `toml:"accel_redirect_path"`

	// SignatureKey lists the HMAC keys of signed routes (a url_re with a
	// "signature" group, see signing.go): the first signs, all verify. Each is
	// at least 16 bytes; empty means no route may be signed.
	SignatureKey []string `toml:"signature_key,omitempty"`

	// Logging configures loggers and handlers, in the original's shape.
	Logging LoggingConfig `toml:"logging"`

	// AdminListen is the host:port of the admin listener (/metrics, /healthz,
	// /readyz, /debug/pprof/, POST /purge). Empty turns it off.
	AdminListen string `toml:"admin_listen"`
	// ShutdownGrace is how long SIGTERM waits for requests in flight.
	ShutdownGrace Duration `toml:"shutdown_grace"`
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout Duration `toml:"read_header_timeout"`
	// IdleTimeout closes keep-alive connections idle that long.
	IdleTimeout Duration `toml:"idle_timeout"`
	// WriteTimeout is the longest a client may take to accept each 256 KiB
	// of an answer; a slow download that keeps moving is never cut. Zero is off.
	WriteTimeout Duration `toml:"write_timeout"`
}

// ClusterConfig is one cluster of an origin: nodes holding the same files.
type ClusterConfig struct {
	// IPs lists the nodes: host[:port], http:// or https:// URLs, or local
	// directories (file:///dir, /dir, ./dir). "{1..19}" in a node expands.
	IPs []string `toml:"ips"`
	// Headers are sent with every request to the cluster (Host among them).
	Headers map[string]string `toml:"headers,omitempty"`
}

// RouteConfig is one entry of routing. Resize is tried before Proxy.
type RouteConfig struct {
	Resize *ResizeConfig `toml:"resize,omitempty"`
	Proxy  *ProxyConfig  `toml:"proxy,omitempty"`
}

// ResizeConfig is a resize action: fetch a source, serve a variant of it.
type ResizeConfig struct {
	URLRe            string `toml:"url_re"`
	OriginTmpl       string `toml:"origin_tmpl"`
	CachePathSource  string `toml:"cache_path_source"`
	CachePathResized string `toml:"cache_path_resized"`
	Origin           string `toml:"origin"`
	// WebPLossless makes WebP output of PNG and GIF sources lossless.
	WebPLossless bool `toml:"webp_lossless,omitempty"`
	// AllowedSizes lists the sizes a request may ask for, after normalisation,
	// as "WxH", "Wx" or "xH" (spec B10); others are 400. Nil allows any size.
	AllowedSizes []string `toml:"allowed_sizes,omitempty"`
}

// ProxyConfig is a proxy action: fetch a file and serve it as it is.
type ProxyConfig struct {
	URLRe      string `toml:"url_re"`
	OriginTmpl string `toml:"origin_tmpl"`
	CachePath  string `toml:"cache_path"`
	Origin     string `toml:"origin"`
	// Methods lists the methods this action accepts besides GET and HEAD;
	// they are forwarded to the origin and never stored, and a successful
	// unsafe one invalidates what the cache holds for the URL.
	Methods []string `toml:"methods,omitempty"`
	// CacheKeyQuery makes the query string part of the cache key and of the
	// origin request. Off by default: query strings are ignored.
	CacheKeyQuery bool `toml:"cache_key_query,omitempty"`
	// StoreUnvalidated stores responses that have neither an explicit
	// lifetime nor a validator, for cache_default_expires.
	StoreUnvalidated bool `toml:"store_unvalidated,omitempty"`
	// PassThrough forwards the origin's answers as they are, whatever their
	// status (stored when RFC 9111 allows). Off, as in the original: a 404
	// or 410 is Katana's 404 (or the placeholder), other errors are 502.
	PassThrough bool `toml:"pass_through,omitempty"`
}

// LoggingConfig keeps the shape of the original's dictConfig: loggers by name
// with a level and handler names, handlers by name.
type LoggingConfig struct {
	Version int `toml:"version,omitempty"`
	// Format is "text" (default) or "json".
	Format string `toml:"format,omitempty"`
	// Level is the level of loggers not named in Loggers: "DEBUG", "INFO"
	// (default), "WARNING", "ERROR".
	Level string `toml:"level,omitempty"`
	// DisableExistingLoggers is accepted for compatibility and ignored.
	DisableExistingLoggers *bool                      `toml:"disable_existing_loggers,omitempty"`
	Root                   *LoggerConfig              `toml:"root,omitempty"`
	Loggers                map[string]LoggerConfig    `toml:"loggers,omitempty"`
	Handlers               map[string]HandlerConfig   `toml:"handlers,omitempty"`
	Formatters             map[string]FormatterConfig `toml:"formatters,omitempty"`
}

// FormatterConfig is accepted for compatibility; Format picks the output shape.
type FormatterConfig struct {
	Format  string `toml:"format,omitempty"`
	Datefmt string `toml:"datefmt,omitempty"`
}

// LoggerConfig is one named logger, such as "katana.server".
type LoggerConfig struct {
	Level    string   `toml:"level,omitempty"`
	Handlers []string `toml:"handlers,omitempty"`
}

// HandlerConfig is one log destination: class "console" or "file".
type HandlerConfig struct {
	// Class is "console" or "file"; the Python names logging.StreamHandler,
	// logging.FileHandler and logging.handlers.WatchedFileHandler also work.
	Class     string `toml:"class,omitempty"`
	Filename  string `toml:"filename,omitempty"`
	Level     string `toml:"level,omitempty"`
	Stream    string `toml:"stream,omitempty"`
	Formatter string `toml:"formatter,omitempty"`
}

// Duration is a span of time written as seconds (300, 1.5) or as a Go
// duration string ("1.5s", "10m").
type Duration struct {
	time.Duration
	bad error // a value that did not parse, reported by validate with its key
}

// UnmarshalTOML accepts a number of seconds or a duration string. A bad
// value is kept for validate, so that every problem is reported at once.
func (d *Duration) UnmarshalTOML(v any) error {
	d.bad = d.unmarshal(v)
	return nil
}

func (d *Duration) unmarshal(v any) error {
	switch x := v.(type) {
	case int64:
		d.Duration = time.Duration(x) * time.Second
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > float64(math.MaxInt64/int64(time.Second)) {
			return fmt.Errorf("duration: %v is not a number of seconds", x)
		}
		d.Duration = time.Duration(x * float64(time.Second))
	case string:
		p, err := parseDuration(x)
		if err != nil {
			return err
		}
		d.Duration = p
	case bool:
		// The original treated false as 0 (off) for external_expires.
		if x {
			return fmt.Errorf("duration: true is not a duration")
		}
		d.Duration = 0
	default:
		return fmt.Errorf("duration: want seconds or a string like \"1.5s\", got %T", v)
	}
	if d.Duration < 0 {
		return fmt.Errorf("duration: %v is negative", d.Duration)
	}
	return nil
}

// MarshalTOML writes whole seconds as a number and anything else as a string,
// so that a dumped config loads back to the same value.
func (d Duration) MarshalTOML() ([]byte, error) {
	if d.Duration%time.Second == 0 {
		return []byte(strconv.FormatInt(int64(d.Duration/time.Second), 10)), nil
	}
	return []byte(strconv.Quote(d.Duration.String())), nil
}

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	p, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration: %q is neither seconds nor a duration like \"1.5s\"", s)
	}
	return p, nil
}

// parseColor reads "#rgb", "#rrggbb", "white" or "black"; "" is white.
func parseColor(s string) (color.NRGBA, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "white":
		return color.NRGBA{255, 255, 255, 255}, nil
	case "black":
		return color.NRGBA{0, 0, 0, 255}, nil
	}
	h := strings.TrimPrefix(strings.TrimSpace(s), "#")
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	if len(h) != 6 {
		return color.NRGBA{}, fmt.Errorf("colour %q: want #rrggbb, white or black", s)
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return color.NRGBA{}, fmt.Errorf("colour %q: want #rrggbb, white or black", s)
	}
	return color.NRGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 255}, nil
}

// defaultConfig returns the settings of a config file that sets nothing.
func defaultConfig() *Config {
	return &Config{
		CacheDir:            "./data",
		CacheDirMaxUsage:    90,
		CleanBatchSize:      100,
		CleanEvery:          Duration{Duration: 60 * time.Second},
		NotFoundSource:      "./data/404.jpeg",
		ChunkSize:           16 * 1024,
		OriginFetchTimeout:  Duration{Duration: 3 * time.Second},
		OriginTimeout:       Duration{Duration: 1 * time.Second},
		MaxSourceBytes:      50 << 20,
		ThumbMaxWidth:       1920,
		ThumbMaxHeight:      1080,
		ThumbMaxQuality:     90,
		ThumbDefaultQuality: 75,
		MaxSourcePixels:     50_000_000,
		MaxAnimationPixels:  100_000_000,
		Background:          "white",
		WebPMethod:          2,
		MaxQueue:            64,
		ExternalExpires:     Duration{Duration: 600 * time.Second},
		CacheDefaultExpires: Duration{Duration: 300 * time.Second},
		ServeStaleOnError:   true,
		MaxStaleOnError:     Duration{Duration: 24 * time.Hour},
		AccelRedirectPath:   "/resized",
		Logging:             LoggingConfig{Version: 1},
		AdminListen:         "127.0.0.1:9090",
		ShutdownGrace:       Duration{Duration: 10 * time.Second},
		ReadHeaderTimeout:   Duration{Duration: 10 * time.Second},
		IdleTimeout:         Duration{Duration: 120 * time.Second},
		WriteTimeout:        Duration{Duration: 60 * time.Second},
	}
}

// defaultConfigTOML is the configuration used when no file is found. It proxies
// any image path and resizes with the simple sample's grammar, extended with
// fit modes, a crop anchor and negotiated output:
// <path>.<jpg|jpeg|png|gif|webp>/resize-[W]x[H][-f|-fill|-crop|-fit][-top|...][-qQ][-N].<jpeg|webp|png|auto>
const defaultConfigTOML = `
cache_dir = "./data"

[origins.default.localhost]
ips = ["127.0.0.1"]
headers = { Host = "localhost" }

[[routing]]
[routing.resize]
url_re = '(?P<base>.+)\.(?P<ext>(?i:jpe?g|png|gif|webp))/resize-(?P<width>\d{1,4})?x(?P<height>\d{1,4})?(?P<fit>-f|-fill|-crop|-fit)?(?P<gravity>-center|-top|-bottom|-left|-right)?(?:-q(?P<quality>\d{1,3}))?(?P<version>-\d+)?\.(?P<thumb_ext>jpeg|jpg|webp|png|auto)'
origin_tmpl = "{base}.{ext}"
cache_path_source = "{base}/source.{ext}"
cache_path_resized = "{base}-{width}x{height}-{fit}{gravity}-q{quality}{version}.{thumb_ext}"
origin = "default"

[routing.proxy]
url_re = '(?P<base>.+)\.(?P<ext>(?i:jpe?g|png|gif|webp))'
origin_tmpl = "{base}.{ext}"
cache_path = "{base}/source.{ext}"
origin = "default"
store_unvalidated = true
`

// deprecatedKeys no longer do anything; they are accepted with a warning so
// that translated configs of the original keep loading.
var deprecatedKeys = map[string]string{
	"ipc_sock_path":             "the cleaner runs inside the server now",
	"cleaner_db_path":           "the cleaner keeps its index in memory now",
	"proxy_url_re":              "routes are set in routing",
	"proxy_origin":              "routes are set in routing",
	"proxy_cache_path":          "routes are set in routing",
	"resize_url_re":             "routes are set in routing",
	"resize_origin":             "routes are set in routing",
	"resize_cache_path_source":  "routes are set in routing",
	"resize_cache_path_resized": "routes are set in routing",
	"origin_mapping":            "origins are set in origins",
}

// configSource says where a loaded config came from, for the startup log.
type configSource struct {
	Path     string   // file read, or "" for the embedded default
	Warnings []string // deprecated keys and other non-fatal remarks
}

// findConfig returns the config path to use: the explicit one, else
// ./katana.toml, else /etc/katana/katana.toml, else "" (the embedded default).
func findConfig(explicit string) string {
	if explicit != "" {
		return explicit
	}
	for _, p := range []string{"katana.toml", "/etc/katana/katana.toml"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// loadConfig reads the file at path, or the embedded default when path is "".
// The returned config has defaults applied and has passed validate.
func loadConfig(path string) (*Config, configSource, error) {
	return loadConfigWith(path, nil)
}

// loadConfigWith is loadConfig with a change applied before validation, such
// as the --origin flag.
func loadConfigWith(path string, adjust func(*Config)) (*Config, configSource, error) {
	src := configSource{Path: path}
	data := []byte(defaultConfigTOML)
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, src, fmt.Errorf("config: %w", err)
		}
		data = b
	}
	cfg, warnings, err := parseConfig(data, adjust)
	src.Warnings = warnings
	if err != nil {
		name := path
		if name == "" {
			name = "embedded default"
		}
		return nil, src, fmt.Errorf("config %s: %w", name, err)
	}
	return cfg, src, nil
}

// parseConfig decodes TOML over the defaults and validates the result. Every
// problem found is reported at once.
func parseConfig(data []byte, adjust func(*Config)) (*Config, []string, error) {
	cfg := defaultConfig()
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		return nil, nil, err
	}

	var warnings []string
	var errs []error
	for _, k := range md.Undecoded() {
		name := k.String()
		if why, ok := deprecatedKeys[name]; ok {
			warnings = append(warnings, fmt.Sprintf("key %s is ignored: %s", name, why))
			continue
		}
		if len(k) > 1 && deprecatedKeys[k[0]] != "" {
			continue // the inside of a deprecated table
		}
		errs = append(errs, fmt.Errorf("unknown key %s", name))
	}

	if !md.IsDefined("origins") {
		cfg.Origins = defaultConfig().defaultOrigins()
	}
	if !md.IsDefined("routing") {
		def, _, _ := parseDefaultRoutes()
		cfg.Routing = def
	}
	if adjust != nil {
		adjust(cfg)
	}
	if cfg.NotFoundAs200 {
		if _, err := os.Stat(cfg.NotFoundSource); err != nil {
			warnings = append(warnings, fmt.Sprintf("not_found_source %s cannot be read (%v): "+
				"missing images are 404 until it can", cfg.NotFoundSource, err))
		}
	}
	if err := cfg.validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, warnings, errors.Join(errs...)
	}
	return cfg, warnings, nil
}

// defaultOrigins is the origin table of the embedded default.
func (*Config) defaultOrigins() map[string]map[string]*ClusterConfig {
	return map[string]map[string]*ClusterConfig{
		"default": {"localhost": {
			IPs:     []string{"127.0.0.1"},
			Headers: map[string]string{"Host": "localhost"},
		}},
	}
}

// parseDefaultRoutes decodes the routes of the embedded default.
func parseDefaultRoutes() ([]*RouteConfig, toml.MetaData, error) {
	var c struct {
		Routing []*RouteConfig `toml:"routing"`
	}
	md, err := toml.Decode(defaultConfigTOML, &c)
	return c.Routing, md, err
}

// validate checks every setting and returns all problems joined, each naming
// its key. Routes and origins are checked more deeply when the server is built.
func (c *Config) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.CacheDir == "" {
		bad("cache_dir", "must not be empty")
	}
	if c.CacheDirMaxUsage <= 0 || c.CacheDirMaxUsage > 100 {
		bad("cache_dir_max_usage", "%v is not a percentage in (0, 100]", c.CacheDirMaxUsage)
	}
	if c.CleanLowWater < 0 || (c.CleanLowWater != 0 && c.CleanLowWater >= c.CacheDirMaxUsage) {
		bad("clean_low_water", "%v must be below cache_dir_max_usage (%v)",
			c.CleanLowWater, c.CacheDirMaxUsage)
	}
	if c.CacheMaxBytes < 0 {
		bad("cache_max_bytes", "%d is negative", c.CacheMaxBytes)
	}
	if c.CleanBatchSize < 1 {
		bad("clean_batch_size", "%d must be at least 1", c.CleanBatchSize)
	}
	for key, d := range map[string]Duration{
		"clean_every": c.CleanEvery, "origin_fetch_timeout": c.OriginFetchTimeout,
		"origin_timeout": c.OriginTimeout, "external_expires": c.ExternalExpires,
		"cache_default_expires": c.CacheDefaultExpires, "max_stale_on_error": c.MaxStaleOnError,
		"shutdown_grace": c.ShutdownGrace, "read_header_timeout": c.ReadHeaderTimeout,
		"idle_timeout": c.IdleTimeout, "write_timeout": c.WriteTimeout,
	} {
		if d.bad != nil {
			bad(key, "%v", d.bad)
		}
	}
	if c.CleanEvery.Duration <= 0 {
		bad("clean_every", "must be positive")
	}
	if c.ChunkSize < 512 {
		bad("chunk_size", "%d must be at least 512 bytes", c.ChunkSize)
	}
	if c.OriginFetchTimeout.Duration <= 0 {
		bad("origin_fetch_timeout", "must be positive")
	}
	if c.OriginTimeout.Duration <= 0 {
		bad("origin_timeout", "must be positive")
	}
	if c.ReadHeaderTimeout.Duration <= 0 {
		bad("read_header_timeout", "must be positive")
	}
	if c.AdminListen != "" {
		_, port, err := net.SplitHostPort(c.AdminListen)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			bad("admin_listen", "%q is not host:port", c.AdminListen)
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	if c.MaxSourceBytes < 0 {
		bad("max_source_bytes", "%d is negative", c.MaxSourceBytes)
	}
	if c.ThumbMaxWidth < 1 || c.ThumbMaxWidth > 16384 {
		bad("thumb_max_width", "%d is not in [1, 16384]", c.ThumbMaxWidth)
	}
	if c.ThumbMaxHeight < 1 || c.ThumbMaxHeight > 16384 {
		bad("thumb_max_height", "%d is not in [1, 16384]", c.ThumbMaxHeight)
	}
	if c.ThumbMaxQuality < 1 || c.ThumbMaxQuality > 100 {
		bad("thumb_max_quality", "%d is not in [1, 100]", c.ThumbMaxQuality)
	}
	if c.ThumbDefaultQuality < 1 || c.ThumbDefaultQuality > 100 {
		bad("thumb_default_quality", "%d is not in [1, 100]", c.ThumbDefaultQuality)
	}
	if c.MaxSourcePixels < 1 {
		bad("max_source_pixels", "%d must be at least 1", c.MaxSourcePixels)
	}
	if c.MaxAnimationPixels < 1 {
		bad("max_animation_pixels", "%d must be at least 1", c.MaxAnimationPixels)
	}
	if _, err := parseColor(c.Background); err != nil {
		bad("background", "%v", err)
	}
	if c.MaxMemory < 0 || (c.MaxMemory > 0 && c.MaxMemory < 64<<20) {
		bad("max_memory", "%d is under 64 MiB (0 means a quarter of the RAM)", c.MaxMemory)
	}
	if c.MaxQueue < 1 {
		bad("max_queue", "%d must be at least 1", c.MaxQueue)
	}
	if c.WebPMethod < 0 || c.WebPMethod > 6 {
		bad("webp_method", "%d is not in [0, 6]", c.WebPMethod)
	}
	if !strings.HasPrefix(c.AccelRedirectPath, "/") {
		bad("accel_redirect_path", "%q must start with /", c.AccelRedirectPath)
	}
	if c.Proxy != "" {
		if _, err := proxyURL(c.Proxy); err != nil {
			bad("proxy", "%v", err)
		}
	}
	if err := c.Logging.validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, validateSigning(c.SignatureKey)...)
	errs = append(errs, c.validateOrigins()...)
	errs = append(errs, c.validateRoutes()...)
	return errors.Join(errs...)
}

// proxyURL parses the proxy key: "host:port" or an http(s) URL.
func proxyURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q is not host:port or an http(s) URL", s)
	}
	return u, nil
}

func (c *Config) validateOrigins() []error {
	var errs []error
	if len(c.Origins) == 0 {
		errs = append(errs, fmt.Errorf("origins: no origin is defined"))
	}
	for _, name := range sortedKeys(c.Origins) {
		clusters := c.Origins[name]
		if len(clusters) == 0 {
			errs = append(errs, fmt.Errorf("origins.%s: no cluster is defined", name))
		}
		for _, cn := range sortedKeys(clusters) {
			if clusters[cn] == nil || len(clusters[cn].IPs) == 0 {
				errs = append(errs, fmt.Errorf("origins.%s.%s.ips: no node is listed", name, cn))
				continue
			}
			errs = append(errs, checkNodes(fmt.Sprintf("origins.%s.%s.ips", name, cn),
				clusters[cn].IPs)...)
		}
	}
	return errs
}

// checkNodes parses every node of a cluster, so that --check reports bad
// nodes together with every other problem.
func checkNodes(key string, ips []string) []error {
	var errs []error
	for i, ip := range ips {
		names, err := expandRanges(ip)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", key, i, err))
			continue
		}
		for _, n := range names {
			if _, err := parseNode(n); err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: %w", key, i, err))
			}
		}
	}
	return errs
}

func (c *Config) validateRoutes() []error {
	var errs []error
	if len(c.Routing) == 0 {
		errs = append(errs, fmt.Errorf("routing: no route is defined, every request would be 404"))
	}
	for i, rc := range c.Routing {
		key := fmt.Sprintf("routing[%d]", i)
		if rc == nil || (rc.Resize == nil && rc.Proxy == nil) {
			errs = append(errs, fmt.Errorf("%s: has neither resize nor proxy", key))
			continue
		}
		if _, err := compileRoute(i, rc, c); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (l *LoggingConfig) validate() error {
	var errs []error
	if l.Format != "" && l.Format != "text" && l.Format != "json" {
		errs = append(errs, fmt.Errorf("logging.format: %q is not text or json", l.Format))
	}
	if _, err := parseLevel(l.Level); err != nil {
		errs = append(errs, fmt.Errorf("logging.level: %w", err))
	}
	for _, name := range sortedKeys(l.Loggers) {
		lc := l.Loggers[name]
		if _, err := parseLevel(lc.Level); err != nil {
			errs = append(errs, fmt.Errorf("logging.loggers.%s.level: %w", name, err))
		}
		for _, h := range lc.Handlers {
			if _, ok := l.Handlers[h]; !ok {
				errs = append(errs, fmt.Errorf("logging.loggers.%s.handlers: no handler %q", name, h))
			}
		}
	}
	for _, name := range sortedKeys(l.Handlers) {
		h := l.Handlers[name]
		switch handlerKind(h.Class) {
		case "file":
			if h.Filename == "" {
				errs = append(errs, fmt.Errorf("logging.handlers.%s.filename: a file handler needs one", name))
			}
		case "console":
		default:
			errs = append(errs, fmt.Errorf("logging.handlers.%s.class: %q is not console or file", name, h.Class))
		}
		if _, err := parseLevel(h.Level); err != nil {
			errs = append(errs, fmt.Errorf("logging.handlers.%s.level: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// handlerKind maps a handler class, in Go or Python spelling, to "console" or "file".
func handlerKind(class string) string {
	switch class {
	case "", "console", "stream", "logging.StreamHandler":
		return "console"
	case "file", "logging.FileHandler", "logging.handlers.WatchedFileHandler",
		"logging.handlers.RotatingFileHandler", "logging.handlers.TimedRotatingFileHandler":
		return "file"
	}
	return ""
}

// parseLevel reads a Python or slog level name; "" is INFO.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(s) {
	case "", "INFO", "NOTSET":
		return slog.LevelInfo, nil
	case "DEBUG":
		return slog.LevelDebug, nil
	case "WARNING", "WARN":
		return slog.LevelWarn, nil
	case "ERROR", "CRITICAL", "FATAL":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not DEBUG, INFO, WARNING or ERROR", s)
}

// dump writes the config as TOML that loads back to the same config.
func (c *Config) dump(w io.Writer) error {
	enc := toml.NewEncoder(w)
	enc.Indent = ""
	return enc.Encode(c)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// memoryBudget is max_memory, or its default.
func (c *Config) memoryBudget() int64 {
	if c.MaxMemory > 0 {
		return c.MaxMemory
	}
	return defaultMaxMemory()
}

// usesOrigin reports whether any route's action fetches from the origin.
func (c *Config) usesOrigin(name string) bool {
	for _, rc := range c.Routing {
		if rc.Resize != nil && originOr(rc.Resize.Origin) == name ||
			rc.Proxy != nil && originOr(rc.Proxy.Origin) == name {
			return true
		}
	}
	return false
}

// originOr is an action's origin, "default" when it names none.
func originOr(name string) string {
	if name == "" {
		return "default"
	}
	return name
}
