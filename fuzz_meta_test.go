// fuzz_meta_test.go fuzzes the sidecar reader: parseMeta never panics, and what
// it accepts in this version's format survives a write and a read.
package main

import (
	"encoding/json"
	"reflect"
	"testing"
)

func FuzzParseMeta(f *testing.F) {
	for _, s := range []string{
		`K1|{"status":200,"content_type":"image/jpeg","etag":"\"a\"","stored":` +
			`"2026-01-02T03:04:05Z","ttl":300,"size":10,"mtime":1}`,
		`K1|{"status":404,"header":{"Vary":["Accept"]},"vary":{"Accept":"x"},"size":0}`,
		`K1|{"status":0}`, `K1|{"size":-1,"status":200}`, `K1|`, `K1|null`, `K1|[]`,
		"C|1700000000|300|Mon, 02 Jan 2006 15:04:05 GMT|\"e|t|a|g\"",
		"C|1|2|3", "C|x|y|z|w", "C|1|-5||", "C|99999999999999999999|1||", "",
		"\x00\xff", `K1|{"stored":"not a time","status":200}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseMeta(b)
		if err != nil {
			return
		}
		if e.Status == 0 || e.Size < 0 || e.TTL < 0 && e.legacy {
			t.Fatalf("parseMeta(%q) accepted %+v", b, e)
		}
		if e.legacy {
			return
		}
		out, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("marshal of an accepted sidecar %q: %v", b, err)
		}
		again, err := parseMeta(append([]byte(metaMagic), out...))
		if err != nil {
			t.Fatalf("rewritten sidecar %s does not load: %v", out, err)
		}
		if !reflect.DeepEqual(normalMeta(e), normalMeta(again)) {
			t.Fatalf("sidecar does not round-trip:\n%+v\n%+v", e, again)
		}
	})
}

// normalMeta drops what JSON cannot tell apart: a time's location and
// monotonic reading, and empty versus nil maps.
func normalMeta(e *entry) entry {
	c := *e
	c.Stored = c.Stored.UTC().Round(0)
	if len(c.Header) == 0 {
		c.Header = nil
	}
	if len(c.Vary) == 0 {
		c.Vary = nil
	}
	return c
}
