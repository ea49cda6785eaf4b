// fuzz_router_test.go fuzzes the route matcher and the template renderer: any path
// either errors or yields cache paths inside cache_dir and origin paths without "..".
package main

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzRoutesConf adds to the embedded default routes whose groups capture
// anything, so that only the path checks stand between a request and the disk.
const fuzzRoutesConf = `
signature_key = ["` + newKey + `"]

[[routing]]
[routing.resize]
url_re = '/s/(?P<signature>[^/]*)(?P<base>.*)/r-(?P<width>\d*)x(?P<height>\d*)(?P<fit>.*)\.(?P<thumb_ext>jpeg|png|webp|auto)'
origin_tmpl = "{base}"
cache_path_source = "{base}"
cache_path_resized = "{base}{fit}/{width}x{height}.{thumb_ext}"

[[routing]]
[routing.resize]
url_re = '(?P<base>.*)/r-(?P<width>\d*)x(?P<height>\d*)(?P<fit>.*)(?P<gravity>-top)?\.(?P<thumb_ext>jpeg|png|webp|auto)'
origin_tmpl = "{base}"
cache_path_source = "{base}"
cache_path_resized = "{base}{fit}{gravity}/{width}x{height}.{thumb_ext}"
allowed_sizes = ["300x", "x120"]

[[routing]]
[routing.proxy]
url_re = '(?P<any>.*)'
origin_tmpl = "{any}"
cache_path = "{any}{any}"
cache_key_query = true
`

func FuzzRouter(f *testing.F) {
	for _, s := range []string{"/a.jpg", "/a.jpg/resize-300x.webp", "/a/../b.jpg",
		"/.katana/tmp/x", "/a.META", "/x/r-300x.jpeg", "/x/r-300x/../../.jpeg",
		"/s/AAAAAAAAAAAAAAAA/a/r-300x.png", "/a//b", "/.", "/..", "/a\x00b", "/\xff",
		"/é/r-x120-top.webp", "/" + strings.Repeat("a/", 40), "/a.jpg/resize-x.auto"} {
		f.Add(s, "")
	}
	f.Add("/a/b.png", "/a%2fb.png")
	f.Add("/a/b.png", "/a%5Cb.png")

	cfg, _, err := parseConfig([]byte(fuzzRoutesConf), nil)
	if err != nil {
		f.Fatal(err)
	}
	def, _, err := parseConfig([]byte(defaultConfigTOML), nil)
	if err != nil {
		f.Fatal(err)
	}
	example, err := os.ReadFile("katana.toml.example")
	if err != nil {
		f.Fatal(err)
	}
	ex, _, err := parseConfig(example, nil)
	if err != nil {
		f.Fatal(err)
	}
	var routers []*router
	for _, c := range []*Config{cfg, def, ex} {
		rt, err := newRouter(c)
		if err != nil {
			f.Fatal(err)
		}
		routers = append(routers, rt)
	}
	cacheDir := f.TempDir()

	f.Fuzz(func(t *testing.T, reqPath, rawPath string) {
		for _, rt := range routers {
			m, err := rt.match(reqPath, rawPath, "q=1")
			if err != nil {
				continue
			}
			checkRoutedPath(t, reqPath, m)
			for _, rel := range []string{m.sourcePath, m.variantPath} {
				if rel != "" {
					checkCachePath(t, reqPath, cacheDir, rel)
				}
			}
		}
	})
}

// checkRoutedPath fails unless a matched path was well formed and its origin
// path stays under the origin root.
func checkRoutedPath(t *testing.T, reqPath string, m *routeMatch) {
	t.Helper()
	if !utf8.ValidString(reqPath) || strings.ContainsAny(reqPath, "\x00\r\n\\") {
		t.Fatalf("match(%q) accepted a malformed path", reqPath)
	}
	if len(reqPath) > maxPathLen {
		t.Fatalf("match(%q) accepted %d bytes, over %d", reqPath, len(reqPath), maxPathLen)
	}
	op := m.originPath
	if !cleanOriginPath(op) || hasDotSegment(op) || !strings.HasPrefix(path.Clean(op), "/") {
		t.Fatalf("match(%q).originPath = %q, leaves the origin root", reqPath, op)
	}
}

// checkCachePath fails unless rel, joined to dir and cleaned, stays inside dir
// and outside the cache's reserved names.
func checkCachePath(t *testing.T, reqPath, dir, rel string) {
	t.Helper()
	full := filepath.Join(dir, filepath.FromSlash(rel))
	inside, err := filepath.Rel(dir, full)
	if err != nil || inside == "." || inside == ".." ||
		strings.HasPrefix(inside, ".."+string(filepath.Separator)) ||
		filepath.IsAbs(rel) || strings.HasPrefix(rel, "/") {
		t.Fatalf("match(%q) cache path %q leaves %s", reqPath, rel, dir)
	}
	if filepath.ToSlash(inside) != rel {
		t.Fatalf("match(%q) cache path %q is not clean (%q)", reqPath, rel, inside)
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == reservedDir || strings.HasPrefix(seg, tempPrefix) ||
			strings.HasSuffix(seg, metaSuffix) || len(seg+metaSuffix) > 255 {
			t.Fatalf("match(%q) cache path %q uses a reserved name", reqPath, rel)
		}
	}
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"{base}.{ext}", "{{literal}}", "{", "}", "{}", "{a}{b}",
		"/x/{a1}/{a2}/{id}-{v}.jpeg", "{{{a}}}", "{9a}", "{a-b}", "a}}b{{"} {
		f.Add(s, "v/../x")
	}
	f.Fuzz(func(t *testing.T, tmpl, value string) {
		tp, err := parseTemplate(tmpl)
		if err != nil {
			return
		}
		groups := map[string]string{}
		for _, name := range tp.fields() {
			if !validGroupName(name) {
				t.Fatalf("parseTemplate(%q) field %q is not a group name", tmpl, name)
			}
			groups[name] = value
		}
		out := tp.render(groups)
		// With every field empty, what remains is the literal text, braces undoubled.
		lit := tp.render(map[string]string{})
		want := strings.NewReplacer("{{", "{", "}}", "}").Replace(stripFields(tmpl))
		if lit != want {
			t.Fatalf("render(%q) without values = %q, want %q", tmpl, lit, want)
		}
		if len(tp.fields()) == 0 && out != lit {
			t.Fatalf("render(%q) = %q, want the literal %q", tmpl, out, lit)
		}
	})
}

// stripFields removes {name} fields from a template that parsed, leaving "{{"
// and "}}" as they are.
func stripFields(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "{{"), strings.HasPrefix(s[i:], "}}"):
			b.WriteString(s[i : i+2])
			i++
		case s[i] == '{':
			i += strings.IndexByte(s[i:], '}')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
