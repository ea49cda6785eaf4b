// httpcache.go holds the rules of HTTP caching (RFC 9111) that Katana, as a
// shared cache, applies: what may be stored, for how long, when a stored
// response may be reused, and which headers travel end to end.
package main

import (
	"net/http"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"time"
)

// directives are the parsed directives of one Cache-Control field (all its
// lines combined). Names are lowercase; a directive given twice with
// different values, or with a malformed number, is recorded as invalid.
type directives map[string]string

// parseDirectives parses every Cache-Control line of h.
func parseDirectives(h http.Header) directives {
	d := directives{}
	for _, line := range h.Values("Cache-Control") {
		for _, part := range splitList(line) {
			name, val, _ := strings.Cut(part, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			val = strings.Trim(strings.TrimSpace(val), `"`)
			if name == "" {
				continue
			}
			if old, dup := d[name]; dup && old != val {
				val = "\x00invalid"
			}
			d[name] = val
		}
	}
	return d
}

// has reports whether the directive is present.
func (d directives) has(name string) bool {
	_, ok := d[name]
	return ok
}

// seconds returns a delta-seconds directive. ok is false when the directive
// is absent; valid is false when it is present but not a number, which RFC
// 9111 section 4.2.1 says to treat as stale (0).
func (d directives) seconds(name string) (v time.Duration, ok, valid bool) {
	s, ok := d[name]
	if !ok {
		return 0, false, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, true, false
	}
	const maxSeconds = 1 << 31 // RFC 9111 section 1.2.2
	return time.Duration(min(n, maxSeconds)) * time.Second, true, true
}

// splitList splits a comma-separated field value, keeping quoted commas.
func splitList(v string) []string {
	var parts []string
	quoted, start := false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				parts = append(parts, strings.TrimSpace(v[start:i]))
				start = i + 1
			}
		}
	}
	return append(parts, strings.TrimSpace(v[start:]))
}

// heuristicStatus lists the status codes that are heuristically cacheable
// (RFC 9110 section 15.1).
var heuristicStatus = map[int]bool{
	200: true, 203: true, 204: true, 206: true, 300: true, 301: true, 308: true,
	404: true, 405: true, 410: true, 414: true, 501: true,
}

// knownStatus lists the status codes whose caching semantics Katana
// implements, for must-understand (RFC 9111 section 5.2.2.3).
var knownStatus = map[int]bool{
	200: true, 203: true, 204: true, 300: true, 301: true, 302: true, 303: true,
	307: true, 308: true, 404: true, 405: true, 410: true, 414: true, 501: true,
}

// storePolicy holds the settings that decide storing.
type storePolicy struct {
	defaultTTL       time.Duration // cache_default_expires: the heuristic without Last-Modified
	storeUnvalidated bool          // store responses with neither freshness nor validator
}

// storable reports whether a response to req may be stored by a shared
// cache (RFC 9111 section 3), and if not, why.
func (p storePolicy) storable(req *http.Request, status int, h http.Header) (bool, string) {
	rq := parseDirectives(req.Header)
	rs := parseDirectives(h)
	switch {
	case req.Method != http.MethodGet:
		return false, "method"
	case status < 200 || status > 599 || status == 206 || status == 304:
		return false, "status"
	case rs.has("must-understand") && !knownStatus[status]:
		return false, "must-understand"
	case surrogateDirectives(h).has("no-store"):
		return false, "surrogate no-store"
	case rq.has("no-store"), rs.has("no-store") && !surrogateDirectives(h).has("max-age"):
		return false, "no-store"
	case rs.has("private") && rs["private"] == "":
		return false, "private"
	case req.Header.Get("Authorization") != "" &&
		!rs.has("public") && !rs.has("s-maxage") && !rs.has("must-revalidate"):
		return false, "authorization"
	case varyStar(h):
		return false, "vary *"
	}
	explicit := rs.has("s-maxage") || rs.has("max-age") || h.Get("Expires") != "" ||
		surrogateDirectives(h).has("max-age")
	if !explicit && !rs.has("public") && !heuristicStatus[status] {
		return false, "no freshness"
	}
	validator := h.Get("ETag") != "" || h.Get("Last-Modified") != ""
	if !explicit && !validator && !p.storeUnvalidated {
		return false, "neither freshness nor validator"
	}
	return true, ""
}

// lifetime is the freshness lifetime of a response stored at responseTime,
// for a shared cache (RFC 9111 section 4.2.1), with a heuristic, defaultTTL,
// only where section 4.2.2 allows one.
func (p storePolicy) lifetime(status int, h http.Header, responseTime time.Time) time.Duration {
	if v, ok, valid := surrogateDirectives(h).seconds("max-age"); ok {
		if !valid {
			return 0
		}
		return v
	}
	d := parseDirectives(h)
	for _, name := range []string{"s-maxage", "max-age"} {
		if v, ok, valid := d.seconds(name); ok {
			if !valid {
				return 0
			}
			return v
		}
	}
	date := headerTime(h, "Date", responseTime)
	if exp := h.Values("Expires"); len(exp) > 0 {
		t, err := http.ParseTime(exp[0])
		if err != nil || len(exp) > 1 {
			return 0 // invalid Expires means already expired
		}
		return max(0, t.Sub(date))
	}
	if !heuristicStatus[status] && !d.has("public") {
		return 0
	}
	// The heuristic is the operator's cache_default_expires, as in the
	// original, rather than a tenth of the time since Last-Modified: a file
	// copied to the origin a minute ago is not about to change either.
	return p.defaultTTL
}

// initialAge is corrected_initial_age of RFC 9111 section 4.2.3.
func initialAge(h http.Header, requestTime, responseTime time.Time) time.Duration {
	apparent := max(0, responseTime.Sub(headerTime(h, "Date", responseTime)))
	ageValue, ok := parseAge(h)
	if !ok {
		return time.Duration(1<<31) * time.Second // an Age we cannot trust: stale
	}
	corrected := ageValue + max(0, responseTime.Sub(requestTime))
	return max(apparent, corrected)
}

// parseAge reads the Age header: absent is 0; ok is false when it is there
// but is not a single non-negative integer (several lines, lists, signs,
// fractions and parameters all make it invalid).
func parseAge(h http.Header) (age time.Duration, ok bool) {
	lines := h.Values("Age")
	if len(lines) == 0 {
		return 0, true
	}
	v := strings.TrimSpace(lines[0])
	if len(lines) > 1 || v == "" || strings.Trim(v, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		n = 1 << 31
	}
	return time.Duration(min(n, 1<<31)) * time.Second, true
}

// headerTime parses a date header, or returns def when it is absent or bad.
func headerTime(h http.Header, name string, def time.Time) time.Time {
	if t, err := http.ParseTime(h.Get(name)); err == nil {
		return t
	}
	return def
}

// varyStar reports whether Vary contains "*", which never matches.
func varyStar(h http.Header) bool {
	for _, f := range varyFields(h) {
		if f == "*" {
			return true
		}
	}
	return false
}

// varyFields lists the canonical header names of Vary, sorted.
func varyFields(h http.Header) []string {
	var fields []string
	for _, line := range h.Values("Vary") {
		for _, f := range splitList(line) {
			if f != "" {
				fields = append(fields, textproto.CanonicalMIMEHeaderKey(f))
			}
		}
	}
	sort.Strings(fields)
	return fields
}

// selecting returns the values of the request's headers named by Vary,
// normalised (lines combined, spaces around commas removed) so that
// equivalent requests match (RFC 9111 section 4.1).
func selecting(req http.Header, fields []string) map[string]string {
	if len(fields) == 0 {
		return nil
	}
	sel := make(map[string]string, len(fields))
	for _, f := range fields {
		var vals []string
		for _, line := range req.Values(f) {
			for _, v := range splitList(line) {
				vals = append(vals, v)
			}
		}
		sel[f] = strings.Join(vals, ",")
	}
	return sel
}

// hopByHop lists the headers that apply to one connection only (RFC 9110
// section 7.6.1) and are never forwarded or stored.
var hopByHop = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// endToEnd returns a copy of h without hop-by-hop headers and without the
// headers that Connection names.
func endToEnd(h http.Header) http.Header {
	out := h.Clone()
	for _, line := range h.Values("Connection") {
		for _, f := range splitList(line) {
			out.Del(f)
		}
	}
	for _, f := range hopByHop {
		out.Del(f)
	}
	return out
}

// mergeNotModified updates stored headers with those of a 304 (RFC 9111
// section 3.2): every field the 304 carries replaces the stored one, except
// the fields that describe the body.
func mergeNotModified(stored, fresh http.Header) http.Header {
	out := stored.Clone()
	for k, v := range endToEnd(fresh) {
		switch k {
		case "Content-Length", "Content-Encoding", "Content-Range", "Content-Md5", "Etag":
			// These describe the stored body, which a 304 does not replace.
			continue
		}
		out[k] = v
	}
	return out
}

// surrogateDirectives parses Surrogate-Control, which targets gateway caches
// such as Katana and takes precedence over Cache-Control for them.
// A directive may end in ";target" to name the surrogate it is for; Katana
// takes every directive as meant for it.
func surrogateDirectives(h http.Header) directives {
	d := parseDirectives(http.Header{"Cache-Control": h.Values("Surrogate-Control")})
	for k, v := range d {
		if i := strings.IndexByte(v, ';'); i >= 0 {
			d[k] = v[:i]
		}
	}
	return d
}

// withoutListedFields removes the fields that private="..." and
// no-cache="..." name: a shared cache must not reuse them without
// revalidation, so it does not keep them (RFC 9111 5.2.2.4 and 5.2.2.7).
func withoutListedFields(h http.Header) http.Header {
	d := parseDirectives(h)
	for _, name := range []string{"private", "no-cache"} {
		for _, f := range strings.Split(d[name], ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.Del(f)
			}
		}
	}
	return h
}
