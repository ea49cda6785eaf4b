// fuzz_config_test.go fuzzes the config loader: parseConfig never panics, and a
// config it accepts dumps to TOML that loads back to the same config.
package main

import (
	"bytes"
	"os"
	"reflect"
	"testing"
)

func FuzzConfig(f *testing.F) {
	if b, err := os.ReadFile("katana.toml.example"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{defaultConfigTOML, signedConf, fuzzRoutesConf, "", "x = 1",
		"cache_dir = ''", "external_expires = false", "clean_every = '1.5s'",
		"clean_every = -1", "origin_timeout = 1e300", "[origins.a.b]\nips = ['10.0.0.{1..3}']",
		"[[routing]]\n[routing.proxy]\nurl_re = '('", "thumb_max_width = 9999999999999",
		"signature_key = ['" + newKey + "']", "[logging]\nformat = 'xml'",
		"background = '#abc'", "ipc_sock_path = '/x'\n[origin_mapping]\na = 1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, err := parseConfig(data, nil)
		if err != nil {
			return
		}
		var first bytes.Buffer
		if err := cfg.dump(&first); err != nil {
			t.Fatalf("dump of an accepted config: %v", err)
		}
		again, _, err := parseConfig(first.Bytes(), nil)
		if err != nil {
			t.Fatalf("dumped config does not load: %v\n%s\nfrom:\n%s", err, first.Bytes(), data)
		}
		if !reflect.DeepEqual(cfg, again) {
			t.Fatalf("dump does not round-trip:\n%s\nfrom:\n%s", first.Bytes(), data)
		}
	})
}
