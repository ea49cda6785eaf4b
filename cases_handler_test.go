package main

import (
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// TestCasesThroughHandler drives every row of the case table (one or more
// per file of ../shared/cases, copied to testdata/cases) through the real
// handler, with a local directory origin holding the files and the built-in
// config's URL grammar.
func TestCasesThroughHandler(t *testing.T) {
	dir, err := filepath.Abs("testdata/cases")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range caseRows() {
		name := r.file + "/" + r.suffix
		if r.config != "" {
			name += " (" + r.config + ")"
		}
		t.Run(name, func(t *testing.T) {
			conf, suffix, accept := caseConfig(t, r)
			k := newKatanaTOML(t, conf, func(c *Config) {
				c.Origins["default"] = map[string]*ClusterConfig{"cases": {IPs: []string{dir}}}
			})
			resp, body := k.get(t, "/"+r.file+"/"+suffix, "Accept", accept)
			wantStatus(t, resp, body, r.status)
			if r.status != 200 {
				for _, f := range cacheFiles(t, k.dir) {
					if !strings.Contains(f, "/source.") {
						t.Errorf("a failed request left %s in the cache", f)
					}
				}
				return
			}
			if got, want := resp.Header.Get("Content-Type"), "image/"+sniffFormat(body); got != want {
				t.Errorf("Content-Type = %q, want %q", got, want)
			}
			r.check(t, body)
		})
	}
}

// caseConfig turns a row's extra configuration into a config, a suffix and
// an Accept header.
func caseConfig(t *testing.T, r caseRow) (conf, suffix, accept string) {
	t.Helper()
	conf, suffix, accept = defaultConfigTOML, r.suffix, "image/webp,image/*"
	switch {
	case r.config == "":
	case strings.HasPrefix(r.config, "background =") ||
		strings.HasPrefix(r.config, "max_animation_pixels ="):
		conf = r.config + "\n" + conf
	case r.config == "route asks for lossless WebP":
		conf = strings.Replace(conf, "origin = \"default\"\n", "origin = \"default\"\nwebp_lossless = true\n", 1)
	case strings.HasPrefix(r.config, "output format auto"):
		suffix = strings.TrimSuffix(suffix, path.Ext(suffix)) + ".auto"
		accept = "image/png,image/jpeg;q=0.9,*/*;q=0.1"
	default:
		t.Fatalf("case row needs config %q, which this test does not know", r.config)
	}
	return conf, suffix, accept
}
