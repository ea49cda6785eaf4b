// config.go owns the configuration: its type, defaults, loading and validation.
package main

import (
	"fmt"
	"image/color"
	"strconv"
	"strings"
	"time"
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

	// ExternalExpires caps how long an entry is trusted without revalidation
	// and is the least lifetime advertised to clients. Zero turns both off.
	ExternalExpires Duration `toml:"external_expires"`
	// CacheForceExpires replaces the origin's lifetime with CacheDefaultExpires.
	CacheForceExpires bool `toml:"cache_force_expires"`
	// CacheDefaultExpires is the lifetime of a response that states none.
	CacheDefaultExpires Duration `toml:"cache_default_expires"`

	// AccelRedirect answers hits with an empty body and X-Accel-Redirect.
	AccelRedirect bool `toml:"accel_redirect"`
	// AccelRedirectPath prefixes the X-Accel-Redirect value.
	AccelRedirectPath string `toml:"accel_redirect_path"`

	// Logging configures loggers and handlers, in the original's shape.
	Logging LoggingConfig `toml:"logging"`
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
}

// ProxyConfig is a proxy action: fetch a file and serve it as it is.
type ProxyConfig struct {
	URLRe      string `toml:"url_re"`
	OriginTmpl string `toml:"origin_tmpl"`
	CachePath  string `toml:"cache_path"`
	Origin     string `toml:"origin"`
}

// LoggingConfig keeps the shape of the original's dictConfig: loggers by name
// with a level and handler names, handlers by name.
type LoggingConfig struct {
	Version  int                      `toml:"version,omitempty"`
	Format   string                   `toml:"format,omitempty"`
	Level    string                   `toml:"level,omitempty"`
	Loggers  map[string]LoggerConfig  `toml:"loggers,omitempty"`
	Handlers map[string]HandlerConfig `toml:"handlers,omitempty"`
}

// LoggerConfig is one named logger, such as "katana.server".
type LoggerConfig struct {
	Level    string   `toml:"level,omitempty"`
	Handlers []string `toml:"handlers,omitempty"`
}

// HandlerConfig is one log destination: class "console" or "file".
type HandlerConfig struct {
	Class     string `toml:"class,omitempty"`
	Filename  string `toml:"filename,omitempty"`
	Formatter string `toml:"formatter,omitempty"`
}

// Duration is a span of time written as seconds (300, 1.5) or as a Go
// duration string ("1.5s", "10m").
type Duration struct{ time.Duration }

// UnmarshalTOML accepts a number of seconds or a duration string.
func (d *Duration) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		d.Duration = time.Duration(x) * time.Second
	case float64:
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

// parseColor reads "#rgb", "#rrggbb", "white", "black" or "transparent".
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
		CleanEvery:          Duration{60 * time.Second},
		NotFoundSource:      "./data/404.jpeg",
		ChunkSize:           16 * 1024,
		OriginFetchTimeout:  Duration{3 * time.Second},
		OriginTimeout:       Duration{1 * time.Second},
		MaxSourceBytes:      50 << 20,
		ThumbMaxWidth:       1920,
		ThumbMaxHeight:      1080,
		ThumbMaxQuality:     90,
		ThumbDefaultQuality: 75,
		MaxSourcePixels:     50_000_000,
		MaxAnimationPixels:  100_000_000,
		Background:          "white",
		WebPMethod:          4,
		ExternalExpires:     Duration{600 * time.Second},
		CacheDefaultExpires: Duration{300 * time.Second},
		AccelRedirectPath:   "/resized",
		Logging:             LoggingConfig{Version: 1},
	}
}
