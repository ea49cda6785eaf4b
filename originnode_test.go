// originnode_test.go checks node parsing, range expansion, config errors,
// back-off and the location memo.
package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestExpandRanges(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "10.0.0.1:80", want: []string{"10.0.0.1:80"}},
		{in: "10.0.0.{1..3}:8", want: []string{"10.0.0.1:8", "10.0.0.2:8", "10.0.0.3:8"}},
		{in: "n{08..10}", want: []string{"n08", "n09", "n10"}},
		{in: "a{1..2}b{5..6}", want: []string{"a1b5", "a1b6", "a2b5", "a2b6"}},
		{in: "x{4..4}", want: []string{"x4"}},
		{in: "x{5..1}", wantErr: "backwards"},
		{in: "x{1..}", wantErr: "whole numbers"},
		{in: "x{a..b}", wantErr: "whole numbers"},
		{in: "x{1,2}", wantErr: "want {A..B}"},
		{in: "x{1..2", wantErr: "unbalanced"},
		{in: "x1..2}", wantErr: "unbalanced"},
		{in: "x{0..99999}", wantErr: "more than"},
		{in: "{1..100}.{1..100}", wantErr: "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := expandRanges(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("expandRanges(%q) = %v, %v, want error with %q",
						tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("expandRanges(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseNode(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	wd, _ := os.Getwd()
	tests := []struct {
		in      string
		url     string // for HTTP nodes, the URL of /a b.jpg
		dir     string // for local nodes
		wantErr string
	}{
		{in: "10.1.2.3", url: "http://10.1.2.3/a%20b.jpg"},
		{in: "img.example.test:8079", url: "http://img.example.test:8079/a%20b.jpg"},
		{in: "img.example.test/prefix/", url: "http://img.example.test/prefix/a%20b.jpg"},
		{in: "https://[::1]:8443", url: "https://[::1]:8443/a%20b.jpg"},
		{in: "http://u:pw@h", url: "http://u:pw@h/a%20b.jpg"},
		{in: dir, dir: dir},
		{in: "file://" + dir, dir: dir},
		{in: "./testdata", dir: filepath.Join(wd, "testdata")},
		{in: "", wantErr: "empty"},
		{in: "a b", wantErr: "white space"},
		{in: "ftp://h", wantErr: "scheme"},
		{in: "h:99999", wantErr: "out of range"},
		{in: "h:", wantErr: "empty port"},
		{in: "http://", wantErr: "no host"},
		{in: "h/?q", wantErr: "query"},
		{in: dir + "/missing", wantErr: "no such file"},
		{in: file, wantErr: "not a directory"},
		{in: "file://otherhost/srv", wantErr: "names host"},
		{in: "file:relative", wantErr: "absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n, err := parseNode(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseNode(%q) = %v, want error with %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseNode(%q) = %v", tt.in, err)
			}
			if tt.url != "" && (n.local() || n.url("/a b.jpg") != tt.url) {
				t.Errorf("parseNode(%q).url(/a b.jpg) = %q, want %q",
					tt.in, n.url("/a b.jpg"), tt.url)
			}
			if tt.dir != "" && n.dir != tt.dir {
				t.Errorf("parseNode(%q).dir = %q, want %q", tt.in, n.dir, tt.dir)
			}
		})
	}
	if n, _ := parseNode("http://u:pw@h"); strings.Contains(n.String(), "pw") {
		t.Errorf("node name %q shows the password", n.String())
	}
}

func TestNewOriginExpandsRanges(t *testing.T) {
	o, err := newOrigin("default", map[string]*ClusterConfig{
		"filer-02": {IPs: []string{"10.195.24.{1..19}:8079"},
			Headers: map[string]string{"Host": "filer-02.example.test"}},
		"local": {IPs: []string{"./testdata"}},
	}, originOptions{})
	if err != nil {
		t.Fatalf("newOrigin() = %v", err)
	}
	defer o.Close()
	c := o.clusters[0]
	if c.name != "filer-02" || len(c.nodes) != 19 || c.nodes[18].name != "10.195.24.19:8079" {
		t.Fatalf("cluster %s has %d nodes, want filer-02 with 19 up to 10.195.24.19:8079",
			c.name, len(c.nodes))
	}
	if c.host != "filer-02.example.test" || c.header.Get("Host") != "" {
		t.Errorf("cluster host = %q, header Host = %q, want the host kept apart",
			c.host, c.header.Get("Host"))
	}
	if o.single != nil {
		t.Errorf("origin with 20 nodes is single")
	}
}

func TestNewOriginReportsEveryProblem(t *testing.T) {
	_, err := newOrigin("shop", map[string]*ClusterConfig{
		"a": {IPs: []string{"good:80", "ftp://x", "h:0"}},
		"b": {IPs: []string{"10.0.0.{9..1}"}},
		"c": {IPs: nil},
		"d": {IPs: []string{"h1", "h1"}},
		"e": {IPs: []string{"h2"}, Headers: map[string]string{"Bad Name": "v", "X": "a\nb"}},
	}, originOptions{Proxy: "ftp://proxy"})
	if err == nil {
		t.Fatal("newOrigin() = nil, want errors")
	}
	for _, want := range []string{
		`origin "shop" cluster "a" node "ftp://x": scheme`,
		`origin "shop" cluster "a" node "h:0": port`,
		`origin "shop" cluster "b" node "10.0.0.{9..1}": range {9..1} runs backwards`,
		`origin "shop" cluster "c": ips is empty`,
		`origin "shop" cluster "d" node "h1": listed twice`,
		`origin "shop" cluster "e" header "Bad Name": bad name`,
		`origin "shop" cluster "e" header "X": value has a line break`,
		`origin "shop": proxy "ftp://proxy": scheme`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("newOrigin() error lacks %q; got:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 8 {
		t.Errorf("newOrigin() reported %d problems, want 8:\n%v", n, err)
	}
	if _, err := newOrigin("none", nil, originOptions{}); err == nil ||
		!strings.Contains(err.Error(), "no clusters") {
		t.Errorf("newOrigin(no clusters) = %v, want an error", err)
	}
}

func TestNodeBackoffDoubles(t *testing.T) {
	var h nodeHealth
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second,
		5 * time.Second, 5 * time.Second} {
		if got := h.markDown(now, true, time.Second, 5*time.Second); got != want {
			t.Errorf("markDown #%d = %v, want %v", i+1, got, want)
		}
	}
	if h.up(now.Add(4*time.Second)) || !h.up(now.Add(5*time.Second)) {
		t.Errorf("up around the end of a 5s back-off is wrong")
	}
	h.markUp()
	if !h.up(now) || h.lastKind() != errOriginFailed {
		t.Errorf("after markUp: up = %v, kind = %v, want true, errOriginFailed",
			h.up(now), h.lastKind())
	}
}

func TestLocationMemoBoundedAndExpiring(t *testing.T) {
	m := newLocationMemo(2)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range []string{"/a", "/b", "/c"} {
		m.put(pathLocation{path: p, found: true, expires: now.Add(time.Minute)})
	}
	if _, ok := m.get("/a", now); ok || m.len() != 2 {
		t.Errorf("memo of 2 kept /a after 3 puts (len %d)", m.len())
	}
	if _, ok := m.get("/c", now); !ok {
		t.Errorf("get(/c) = missing, want found")
	}
	if _, ok := m.get("/c", now.Add(time.Minute)); ok {
		t.Errorf("get(/c) after expiry = found, want missing")
	}
}
