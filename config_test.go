package main

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readExample(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("katana.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExampleDumpRoundTrips(t *testing.T) {
	cfg, warnings, err := parseConfig(readExample(t), nil)
	if err != nil {
		t.Fatalf("example: %v", err)
	}
	for _, w := range warnings {
		if !strings.HasPrefix(w, "not_found_source") { // ./404.jpeg is the user's to provide
			t.Errorf("example warning %q, want none", w)
		}
	}
	var first bytes.Buffer
	if err := cfg.dump(&first); err != nil {
		t.Fatal(err)
	}
	again, _, err := parseConfig(first.Bytes(), nil)
	if err != nil {
		t.Fatalf("dumped example does not load: %v\n%s", err, first.String())
	}
	if !reflect.DeepEqual(cfg, again) {
		t.Errorf("dump does not round-trip:\n%s", first.String())
	}
	var second bytes.Buffer
	again.dump(&second)
	if first.String() != second.String() {
		t.Errorf("second dump differs from the first")
	}
	if _, err := newRouter(cfg); err != nil {
		t.Errorf("example routes: %v", err)
	}
	if len(cfg.Routing) != 3 || len(cfg.Origins) != 3 {
		t.Errorf("example has %d routes and %d origins, want 3 and 3", len(cfg.Routing), len(cfg.Origins))
	}
}

func TestDefaultConfigLoads(t *testing.T) {
	cfg, src, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if src.Path != "" || len(cfg.Routing) != 1 || cfg.Routing[0].Resize == nil || cfg.Routing[0].Proxy == nil {
		t.Errorf("embedded default = %+v", cfg.Routing)
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"2", 2 * time.Second},
		{"2.5", 2500 * time.Millisecond},
		{`"1.5s"`, 1500 * time.Millisecond},
		{`"10m"`, 10 * time.Minute},
		{`"3"`, 3 * time.Second},
	}
	for _, tt := range tests {
		cfg, _, err := parseConfig([]byte("origin_timeout = "+tt.in), nil)
		if err != nil {
			t.Errorf("origin_timeout = %s: %v", tt.in, err)
			continue
		}
		if cfg.OriginTimeout.Duration != tt.want {
			t.Errorf("origin_timeout = %s gives %v, want %v", tt.in, cfg.OriginTimeout.Duration, tt.want)
		}
	}
	// external_expires = false (the original's way to say "off") is 0.
	cfg, _, err := parseConfig([]byte("external_expires = false"), nil)
	if err != nil || cfg.ExternalExpires.Duration != 0 {
		t.Errorf("external_expires = false: %v, %v", cfg, err)
	}
}

func TestDeprecatedKeysWarn(t *testing.T) {
	conf := `ipc_sock_path = "/tmp/katana.sock"
cleaner_db_path = "/tmp/katana_cleaner.db"
proxy_url_re = "x"
proxy_origin = ""
proxy_cache_path = ""
`
	_, warnings, err := parseConfig([]byte(conf), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 5 {
		t.Errorf("warnings = %q, want one per deprecated key", warnings)
	}
	for _, w := range warnings {
		if !strings.Contains(w, "is ignored") {
			t.Errorf("warning %q does not say the key is ignored", w)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	route := func(re, origin, cache string) string {
		return "[[routing]]\n[routing.proxy]\nurl_re = '" + re + "'\norigin_tmpl = '{base}'\n" +
			"cache_path = '" + cache + "'\norigin = '" + origin + "'\n"
	}
	tests := []struct {
		name, conf string
		want       []string // each must appear in the error
	}{
		{"unknown key", "cache_dri = './x'", []string{"unknown key cache_dri"}},
		{"unknown nested key", "[origins.default.a]\nips = ['127.0.0.1']\nport = 80",
			[]string{"unknown key origins.default.a.port"}},
		{"bad regex", route(`(?P<base>.*`, "default", "{base}"),
			[]string{"routing[0].proxy.url_re", "does not compile"}},
		{"lookahead", route(`(?P<base>.*)(?=\.jpg)`, "default", "{base}"),
			[]string{"routing[0].proxy.url_re"}},
		{"template group", route(`(?P<base>.*)`, "default", "{nope}"),
			[]string{"routing[0].proxy.cache_path", "{nope} names no group"}},
		{"template syntax", route(`(?P<base>.*)`, "default", "{base"),
			[]string{"routing[0].proxy.cache_path", "unclosed"}},
		{"unknown origin", route(`(?P<base>.*)`, "nowhere", "{base}"),
			[]string{`routing[0].proxy.origin: no origin "nowhere"`}},
		{"bad output format", "[[routing]]\n[routing.resize]\nurl_re = '(?P<b>.*)'\norigin_tmpl = '{b}'\n" +
			"cache_path_source = '{b}'\ncache_path_resized = '{b}.gif'\n",
			[]string{"routing[0].resize.cache_path_resized", "not jpeg"}},
		{"bad duration", "origin_timeout = 'soon'", []string{"origin_timeout", "soon"}},
		{"negative duration", "clean_every = -1", []string{"clean_every"}},
		{"range", "thumb_max_quality = 101", []string{"thumb_max_quality", "[1, 100]"}},
		{"usage", "cache_dir_max_usage = 0", []string{"cache_dir_max_usage"}},
		{"colour", "background = 'pink'", []string{"background"}},
		{"empty ips", "[origins.default.a]\nips = []", []string{"origins.default.a.ips"}},
		{"log handler", "[logging.loggers.'katana.server']\nhandlers = ['nope']",
			[]string{`no handler "nope"`}},
		{"log level", "[logging]\nlevel = 'LOUD'", []string{"logging.level"}},
		{"toml syntax", "cache_dir = ", []string{"line 1"}},
		{"several at once", "thumb_max_width = 0\nthumb_max_height = 0\nchunk_size = 1\nfoo = 1",
			[]string{"thumb_max_width", "thumb_max_height", "chunk_size", "unknown key foo"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseConfig([]byte(tt.conf), nil)
			if err == nil {
				t.Fatalf("parseConfig(%q) succeeded, want an error", tt.conf)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestFindConfigOrder(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if got := findConfig(""); got != "" && got != "/etc/katana/katana.toml" {
		t.Errorf("findConfig with no file = %q", got)
	}
	os.WriteFile("katana.toml", []byte("cache_dir = './c'\n"), 0o644)
	if got := findConfig(""); got != "katana.toml" {
		t.Errorf("findConfig = %q, want katana.toml", got)
	}
	if got := findConfig("other.toml"); got != "other.toml" {
		t.Errorf("findConfig(explicit) = %q", got)
	}
}
