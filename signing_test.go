// signing_test.go tests the flood guards: signed URLs, key rotation, size
// allow-lists, their config checks and katana --sign.
package main

import (
	"context"
	"image/color"
	"net/http"
	"os"
	"strings"
	"testing"
)

const (
	newKey = "new-key-0123456789abcdef"
	oldKey = "old-key-0123456789abcdef"
)

// signedConf has a signed resize route under /s/ and an unsigned one with an
// allow-list of sizes under /l/.
const signedConf = `
signature_key = ["` + newKey + `", "` + oldKey + `"]

[[routing]]
[routing.resize]
url_re = '/s/(?P<signature>[^/]*)(?P<base>/.+)\.(?P<ext>jpg|png)/resize-(?P<width>\d{1,4})?x(?P<height>\d{1,4})?\.(?P<thumb_ext>jpeg|png|webp)'
origin_tmpl = "{base}.{ext}"
cache_path_source = "/src{base}.{ext}"
cache_path_resized = "/s{base}-{width}x{height}.{thumb_ext}"

[[routing]]
[routing.resize]
url_re = '/l(?P<base>/.+)\.(?P<ext>jpg|png)/resize-(?P<width>\d{1,4})?x(?P<height>\d{1,4})?\.(?P<thumb_ext>jpeg|png|webp)'
origin_tmpl = "{base}.{ext}"
cache_path_source = "/src{base}.{ext}"
cache_path_resized = "/l{base}-{width}x{height}.{thumb_ext}"
allowed_sizes = ["300x", "600x400", "x120"]
`

func newSignedKatana(t *testing.T, o *testOrigin) *testKatana {
	t.Helper()
	return newKatanaTOML(t, signedConf, func(c *Config) {
		c.Origins["default"] = map[string]*ClusterConfig{"test": {IPs: []string{o.node()}}}
	})
}

func TestSignedURLs(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/a.png", testPNG(t, 800, 600, color.NRGBA{10, 200, 30, 255}))
	k := newSignedKatana(t, o)

	minted, err := signPath(k.s.cfg, "/s/{signature}/a.png/resize-200x.png")
	if err != nil {
		t.Fatalf("signPath: %v", err)
	}
	sig := strings.Split(minted, "/")[2]
	if len(sig) != signatureLen {
		t.Fatalf("signPath = %q, want a %d-character signature", minted, signatureLen)
	}
	oldSig := mac([]byte(oldKey), "/s//a.png/resize-300x.png")
	strangerSig := mac([]byte("stranger-key-0123456789"), "/s//a.png/resize-200x.png")
	tampered := []byte(sig)
	tampered[0] ^= 1

	tests := []struct {
		name, path string
		status     int
	}{
		{"first key", minted, http.StatusOK},
		{"second key still verifies", "/s/" + oldSig + "/a.png/resize-300x.png", http.StatusOK},
		{"signature of another size", "/s/" + sig + "/a.png/resize-201x.png", http.StatusForbidden},
		{"tampered", "/s/" + string(tampered) + "/a.png/resize-200x.png", http.StatusForbidden},
		{"unknown key", "/s/" + strangerSig + "/a.png/resize-200x.png", http.StatusForbidden},
		{"missing", "/s//a.png/resize-200x.png", http.StatusForbidden},
		{"too long", "/s/" + sig + "x/a.png/resize-200x.png", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := o.total()
			resp, body := k.get(t, tt.path)
			wantStatus(t, resp, body, tt.status)
			if tt.status != http.StatusOK {
				if n := o.total() - before; n != 0 {
					t.Errorf("origin saw %d requests for a refused URL, want 0", n)
				}
				if strings.Contains(string(body), "a.png") {
					t.Errorf("error body %q echoes the path", body)
				}
				return
			}
			img := decodeImage(t, body, "png")
			if w := img.Bounds().Dx(); w != 200 && w != 300 {
				t.Errorf("width = %d, want the signed size", w)
			}
		})
	}
}

func TestAllowedSizes(t *testing.T) {
	o := newTestOrigin(t)
	o.put("/a.jpg", testJPEG(t, 1200, 800))
	k := newSignedKatana(t, o)
	tests := []struct {
		path   string
		status int
		w, h   int
	}{
		{"/l/a.jpg/resize-300x.jpeg", http.StatusOK, 300, 200},
		{"/l/a.jpg/resize-x120.jpeg", http.StatusOK, 180, 120},
		{"/l/a.jpg/resize-600x400.webp", http.StatusOK, 600, 400},
		{"/l/a.jpg/resize-0300x.jpeg", http.StatusOK, 300, 200}, // normalised to 300x
		{"/l/a.jpg/resize-301x.jpeg", http.StatusBadRequest, 0, 0},
		{"/l/a.jpg/resize-600x.jpeg", http.StatusBadRequest, 0, 0},
		{"/l/a.jpg/resize-x.jpeg", http.StatusBadRequest, 0, 0},
		{"/l/a.jpg/resize-300x1.jpeg", http.StatusBadRequest, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := k.get(t, tt.path)
			wantStatus(t, resp, body, tt.status)
			if tt.status != http.StatusOK {
				if !strings.Contains(string(body), "size not allowed") {
					t.Errorf("body = %q, want it to say the size is not allowed", body)
				}
				return
			}
			img := decodeImage(t, body, sniffFormat(body))
			if b := img.Bounds(); b.Dx() != tt.w || b.Dy() != tt.h {
				t.Errorf("size = %dx%d, want %dx%d", b.Dx(), b.Dy(), tt.w, tt.h)
			}
		})
	}
	for _, f := range cacheFiles(t, k.dir) {
		if strings.Contains(f, "301x") || strings.Contains(f, "600x0") {
			t.Errorf("a refused size was stored: %s", f)
		}
	}
}

func TestSigningConfigErrors(t *testing.T) {
	route := `
[[routing]]
[routing.resize]
url_re = '/s/(?P<signature>[^/]*)(?P<base>/.+)\.jpg/resize-(?P<width>\d+)x\.png'
origin_tmpl = "{base}.jpg"
cache_path_source = "{base}.jpg"
cache_path_resized = "{base}-{width}.png"
`
	tests := []struct {
		name, conf string
		want       []string
	}{
		{"signed route without keys", route,
			[]string{"routing[0].resize.url_re", "signature_key is empty"}},
		{"short and repeated keys", `signature_key = ["short", "` + newKey + `", "` +
			newKey + `"]` + route, []string{"signature_key[0]", "signature_key[2]"}},
		{"empty lists (found by FuzzConfig)", "signature_key = []\n" + strings.Replace(route,
			"origin_tmpl", "allowed_sizes = []\norigin_tmpl", 1),
			[]string{"signature_key: an empty list", "allowed_sizes: an empty list"}},
		{"bad sizes", `signature_key = ["` + newKey + `"]` + strings.Replace(route,
			"origin_tmpl", `allowed_sizes = ["300x", "3x3x", "99999x", "abc"]`+"\norigin_tmpl", 1),
			[]string{"allowed_sizes[1]", "allowed_sizes[2]", "allowed_sizes[3]",
				"thumb_max_width"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseConfig([]byte(tt.conf), nil)
			if err == nil {
				t.Fatal("parseConfig succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("parseConfig error %q does not name %q", err, w)
				}
			}
		})
	}
}

func TestCLISign(t *testing.T) {
	t.Chdir(t.TempDir())
	os.WriteFile("k.toml", []byte(signedConf), 0o644)
	out, _, err := runApp(t, context.Background(), "--config", "k.toml",
		"--sign", "/s/{signature}/cat.jpg/resize-300x.webp")
	if err != nil {
		t.Fatalf("--sign: %v", err)
	}
	got := strings.TrimSpace(out)
	want := "/s/" + mac([]byte(newKey), "/s//cat.jpg/resize-300x.webp") + "/cat.jpg/resize-300x.webp"
	if got != want {
		t.Errorf("--sign printed %q, want %q", got, want)
	}
	for _, bad := range []string{"/l/{signature}/cat.jpg/resize-300x.webp",
		"/s/cat.jpg/resize-300x.webp", "/nothing/{signature}"} {
		if out, _, err := runApp(t, context.Background(), "--config", "k.toml",
			"--sign", bad); err == nil {
			t.Errorf("--sign %q = %q, want an error", bad, out)
		}
	}
}

func TestVerifyNeedsExactLength(t *testing.T) {
	s := newSigner([]string{newKey})
	sig, _ := s.sign("/m")
	for _, bad := range []string{"", sig[:signatureLen-1], sig + "A", strings.ToUpper(sig)} {
		if bad != sig && s.verify("/m", bad) {
			t.Errorf("verify(/m, %q) = true, want false", bad)
		}
	}
	if !s.verify("/m", sig) {
		t.Errorf("verify(/m, %q) = false, want true", sig)
	}
	var none *signer
	if none.verify("/m", sig) {
		t.Error("nil signer verified a signature")
	}
}

// BenchmarkSignedMatch is the router's cost for a signed path, two keys tried.
func BenchmarkSignedMatch(b *testing.B) {
	cfg, _, err := parseConfig([]byte(signedConf), nil)
	if err != nil {
		b.Fatal(err)
	}
	minted, err := signPath(cfg, "/s/{signature}/a/b/c.png/resize-300x.webp")
	if err != nil {
		b.Fatal(err)
	}
	rt, _ := newRouter(cfg)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := rt.match(minted, "", ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnsignedMatch is the same route shape without a signature, for
// comparison.
func BenchmarkUnsignedMatch(b *testing.B) {
	cfg, _, err := parseConfig([]byte(signedConf), nil)
	if err != nil {
		b.Fatal(err)
	}
	rt, _ := newRouter(cfg)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := rt.match("/l/a/b/c.png/resize-300x.webp", "", ""); err != nil {
			b.Fatal(err)
		}
	}
}
