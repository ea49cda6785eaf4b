// router.go turns a request path into a typed action: which route matched,
// which origin path to fetch, which cache paths to use, which variant to make.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Router errors, mapped to statuses by the handler.
var (
	errNoRoute  = errors.New("no route matches")
	errBadPath  = errors.New("path not allowed")
	errLongPath = errors.New("path too long")
)

// maxPathLen bounds request paths; longer ones get 414.
const maxPathLen = 2048

// maxNameLen and maxCachePathLen keep rendered cache paths within what
// filesystems take (NAME_MAX, and PATH_MAX less room for cache_dir), so that a
// long request is a 414, not a failed write (503).
const (
	maxNameLen      = 255
	maxCachePathLen = 3072
)

type actionKind int

const (
	actionProxy actionKind = iota
	actionResize
)

func (k actionKind) String() string {
	if k == actionResize {
		return "resize"
	}
	return "proxy"
}

// action is one compiled resize or proxy action of a route.
type action struct {
	kind        actionKind
	route       int    // index in routing
	key         string // "routing[0].resize", for messages
	re          *regexp.Regexp
	origin      string
	originTmpl  template
	sourceTmpl  template // cache_path (proxy) or cache_path_source (resize)
	resizedTmpl template // cache_path_resized (resize only)

	lossless         bool            // WebP output of PNG and GIF sources is lossless (resize only)
	methods          map[string]bool // methods besides GET and HEAD (proxy only)
	keyQuery         bool            // the query string is part of the key (proxy only)
	storeUnvalidated bool            // store responses without freshness or validator
	passThrough      bool            // forward any origin status as it is (proxy only)
	signed           bool            // url_re has a signature group (signing.go)
	sizes            sizeSet         // allowed_sizes; nil allows any (resize only)
}

// allows reports whether the action accepts the method.
func (a *action) allows(method string) bool {
	return method == "GET" || method == "HEAD" || a.methods[method]
}

// allowHeader is the Allow value for the action; nil means GET and HEAD.
func (a *action) allowHeader() string {
	allow := []string{"GET", "HEAD"}
	if a != nil {
		allow = append(allow, sortedKeys(a.methods)...)
	}
	return strings.Join(allow, ", ")
}

// routeMatch is what the router decided for one request.
type routeMatch struct {
	action      *action
	groups      map[string]string // after normalisation
	originPath  string            // rendered origin_tmpl, starting with "/"
	query       string            // raw query sent to the origin (cache_key_query only)
	sourcePath  string            // cache path of the source, relative to cache_dir
	variantPath string            // cache path of the variant (resize only)
	image       imageOptions      // what variant to make (resize only)
	negotiated  bool              // the format came from Accept: answers Vary on it
}

// router holds the compiled routes in order. It is read-only after
// construction and safe for concurrent use.
type router struct {
	actions []*action
	cfg     *Config
	signer  *signer

	mu   sync.Mutex              // guards memo
	memo map[memoKey]*routeMatch // recent matches, by path; read-only once stored
}

// memoSize bounds the remembered matches; a hot path skips the regexes.
const memoSize = 10_000

// newRouter compiles every route of cfg, reporting all problems at once.
func newRouter(cfg *Config) (*router, error) {
	rt := &router{cfg: cfg, signer: newSigner(cfg.SignatureKey)}
	var errs []error
	for i, rc := range cfg.Routing {
		acts, err := compileRoute(i, rc, cfg)
		if err != nil {
			errs = append(errs, err)
		}
		rt.actions = append(rt.actions, acts...)
	}
	return rt, errors.Join(errs...)
}

// compileRoute compiles the actions of routing[i], resize first as in the
// original, and checks their templates against their regex's groups.
func compileRoute(i int, rc *RouteConfig, cfg *Config) ([]*action, error) {
	var acts []*action
	var errs []error
	if rc.Resize != nil {
		r := rc.Resize
		a, err := compileAction(cfg, actionResize, i, r.URLRe, r.Origin, map[string]string{
			"origin_tmpl":        r.OriginTmpl,
			"cache_path_source":  r.CachePathSource,
			"cache_path_resized": r.CachePathResized,
		})
		errs = append(errs, err)
		sizes, err := parseSizes(fmt.Sprintf("routing[%d].resize.allowed_sizes", i),
			r.AllowedSizes, cfg)
		errs = append(errs, err)
		if a != nil {
			a.lossless, a.sizes = r.WebPLossless, sizes
			acts = append(acts, a)
		}
	}
	if rc.Proxy != nil {
		p := rc.Proxy
		a, err := compileAction(cfg, actionProxy, i, p.URLRe, p.Origin, map[string]string{
			"origin_tmpl": p.OriginTmpl,
			"cache_path":  p.CachePath,
		})
		errs = append(errs, err)
		methods, err := parseMethods(fmt.Sprintf("routing[%d].proxy.methods", i), p.Methods)
		errs = append(errs, err)
		if a != nil {
			a.methods, a.keyQuery = methods, p.CacheKeyQuery
			a.storeUnvalidated, a.passThrough = p.StoreUnvalidated, p.PassThrough
			acts = append(acts, a)
		}
	}
	return acts, errors.Join(errs...)
}

func compileAction(cfg *Config, kind actionKind, i int, re, origin string,
	tmpls map[string]string) (*action, error) {
	a := &action{kind: kind, route: i, key: fmt.Sprintf("routing[%d].%s", i, kind)}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", a.key, key, fmt.Sprintf(format, args...)))
	}

	if re == "" {
		bad("url_re", "must not be empty")
	} else if _, err := regexp.Compile(re); err != nil {
		bad("url_re", "does not compile: %v", err)
	} else {
		a.re = regexp.MustCompile(`\A(?:` + re + `)\z`)
		if a.signed = isSigned(a.re); a.signed && len(cfg.SignatureKey) == 0 {
			bad("url_re", "has a %s group but signature_key is empty", signatureGroup)
		}
	}
	if origin == "" {
		origin = "default"
	}
	a.origin = origin
	if _, ok := cfg.Origins[origin]; !ok {
		bad("origin", "no origin %q in origins", origin)
	}

	groups := map[string]bool{}
	if a.re != nil {
		for _, n := range a.re.SubexpNames() {
			if n != "" {
				groups[n] = true
			}
		}
	}
	for _, key := range sortedKeys(tmpls) {
		t, err := parseTemplate(tmpls[key])
		switch {
		case tmpls[key] == "":
			bad(key, "must not be empty")
		case err != nil:
			bad(key, "%v", err)
		case a.re != nil:
			for _, f := range t.fields() {
				if !groups[f] {
					bad(key, "{%s} names no group of url_re", f)
				}
			}
		}
		if err == nil && t.literalDotSegment() {
			bad(key, "a literal . or .. segment would leave the root")
		}
		switch key {
		case "origin_tmpl":
			a.originTmpl = t
		case "cache_path", "cache_path_source":
			a.sourceTmpl = t
		case "cache_path_resized":
			a.resizedTmpl = t
			if ext, ok := t.literalExt(); ok && formatForExt(ext) == "" {
				bad(key, "extension %q is not jpeg, jpg, png, webp or auto", ext)
			}
		}
	}
	if kind == actionResize && a.sourceTmpl.raw != "" && a.sourceTmpl.raw == a.resizedTmpl.raw {
		bad("cache_path_resized", "is cache_path_source: every variant would overwrite its source")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return a, nil
}

// parseMethods checks a methods list: upper-case method names.
func parseMethods(key string, list []string) (map[string]bool, error) {
	m := map[string]bool{}
	for _, name := range list {
		if name == "" || strings.ToUpper(name) != name || strings.ContainsAny(name, " \t/()<>@,;:\"[]?={}") {
			return nil, fmt.Errorf("%s: %q is not an upper-case method name", key, name)
		}
		m[name] = true
	}
	return m, nil
}

// match finds the first action whose regex matches the whole path and
// renders its templates. Query strings play no part, neither in routing nor
// in cache keys, unless the action sets cache_key_query.
func (rt *router) match(reqPath, rawPath, rawQuery string) (*routeMatch, error) {
	key := memoKey{reqPath, rawPath, rawQuery}
	rt.mu.Lock()
	m, ok := rt.memo[key]
	rt.mu.Unlock()
	if !ok {
		var err error
		if m, err = rt.matchSlow(reqPath, rawPath, rawQuery); err != nil {
			return nil, err
		}
		rt.remember(key, m)
	}
	c := *m // callers may change their copy (format negotiation)
	return &c, nil
}

// memoKey is what a remembered match was made from.
type memoKey struct{ path, rawPath, rawQuery string }

// remember keeps m for key, dropping one remembered match when full.
func (rt *router) remember(key memoKey, m *routeMatch) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.memo == nil {
		rt.memo = make(map[memoKey]*routeMatch)
	}
	if len(rt.memo) >= memoSize {
		for k := range rt.memo {
			delete(rt.memo, k)
			break
		}
	}
	rt.memo[key] = m
}

func (rt *router) matchSlow(reqPath, rawPath, rawQuery string) (*routeMatch, error) {
	if len(reqPath) > maxPathLen {
		return nil, errLongPath
	}
	if err := checkRequestPath(reqPath, rawPath); err != nil {
		return nil, err
	}
	for _, a := range rt.actions {
		sub := a.re.FindStringSubmatch(reqPath)
		if sub == nil {
			continue
		}
		if err := rt.checkSignature(a, reqPath); err != nil {
			return nil, fmt.Errorf("%s: %w", a.key, err)
		}
		groups := make(map[string]string, len(sub))
		for i, n := range a.re.SubexpNames() {
			if n != "" {
				groups[n] = sub[i]
			}
		}
		m, err := rt.build(a, groups)
		if err == nil && a.keyQuery && rawQuery != "" {
			m.query = rawQuery
			m.sourcePath += queryKeySuffix(rawQuery)
		}
		return m, err
	}
	return nil, errNoRoute
}

// queryKeySuffix makes a query string part of a cache file name.
func queryKeySuffix(q string) string {
	h := sha256.Sum256([]byte(q))
	return ".q" + hex.EncodeToString(h[:8])
}

// build normalises the groups and renders the action's paths.
func (rt *router) build(a *action, groups map[string]string) (*routeMatch, error) {
	m := &routeMatch{action: a, groups: groups}
	if a.kind == actionResize {
		m.image = rt.normalise(groups)
		if err := a.checkSize(m.image); err != nil {
			return nil, fmt.Errorf("%s: %w", a.key, err)
		}
	}
	var err error
	if m.originPath, err = originPath(a.originTmpl.render(groups)); err != nil {
		return nil, err
	}
	if m.sourcePath, err = cachePath(a.sourceTmpl.render(groups)); err != nil {
		return nil, err
	}
	if a.kind == actionResize {
		if m.variantPath, err = cachePath(a.resizedTmpl.render(groups)); err != nil {
			return nil, err
		}
		m.image.Format = formatForExt(path.Ext(m.variantPath))
		if m.image.Format == "" {
			return nil, fmt.Errorf("%w: output format %q is not supported",
				errBadPath, path.Ext(m.variantPath))
		}
	}
	return m, nil
}

// normalise turns width, height, quality, fit and gravity into canonical
// values and writes them back into groups before templates are rendered, so
// that requests that mean the same thing share a cache file (spec 4.2).
func (rt *router) normalise(groups map[string]string) imageOptions {
	c := rt.cfg
	w := min(atoi(groups["width"]), c.ThumbMaxWidth)
	h := min(atoi(groups["height"]), c.ThumbMaxHeight)
	q := c.ThumbDefaultQuality
	if s := groups["quality"]; s != "" {
		q = atoi(s)
	}
	q = max(1, min(q, c.ThumbMaxQuality))
	fit := fitMode(groups["fit"])
	gravity := gravityName(groups["gravity"])

	groups["width"] = strconv.Itoa(w)
	groups["height"] = strconv.Itoa(h)
	groups["quality"] = strconv.Itoa(q)
	groups["fit"] = "0"
	if fit == "fill" {
		groups["fit"] = "1"
	}
	if strings.EqualFold(groups["thumb_ext"], "jpg") {
		groups["thumb_ext"] = "jpeg" // .jpg and .jpeg outputs share one file
	}
	if _, ok := groups["gravity"]; ok {
		// The anchor matters only for a crop, and the centre is the default:
		// both leave the cache path as it was without one.
		groups["gravity"] = ""
		if fit == "fill" && gravity != "center" {
			groups["gravity"] = "-" + gravity
		}
	}
	return imageOptions{Width: w, Height: h, Fit: fit, Gravity: gravity, Quality: q}
}

// fitMode reads a captured fit: any non-empty capture means fill (crop), as in
// the original, except the words that name the default.
func fitMode(s string) string {
	switch strings.ToLower(strings.Trim(s, "-_")) {
	case "", "0", "fit", "inside":
		return "inside"
	}
	return "fill"
}

// gravityName reads a captured crop anchor; anything unknown is the centre.
func gravityName(s string) string {
	switch g := strings.ToLower(strings.Trim(s, "-_")); g {
	case "top", "bottom", "left", "right":
		return g
	case "n", "north":
		return "top"
	case "s", "south":
		return "bottom"
	case "w", "west":
		return "left"
	case "e", "east":
		return "right"
	}
	return "center"
}

// atoi reads a captured number; empty or malformed is 0.
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// negotiate settles an "auto" output format from the request's Accept:
// WebP when it names image/webp with a non-zero q, else JPEG or PNG by the
// source's alpha. The WebP variant shares the path of an explicit .webp
// request; the other keeps the .auto path. Other formats are left alone.
func (m *routeMatch) negotiate(accept string) {
	if m.image.Format != "auto" {
		return
	}
	m.negotiated = true
	if acceptsWebP(accept) {
		m.image.Format = "webp"
		m.variantPath = strings.TrimSuffix(m.variantPath, path.Ext(m.variantPath)) + ".webp"
		return
	}
	m.image.Format = "auto-noalpha"
}

// acceptsWebP reports whether an Accept value names image/webp with q > 0.
func acceptsWebP(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		typ, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(typ), "image/webp") {
			continue
		}
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, "q") {
				if q, err := strconv.ParseFloat(v, 64); err == nil && q <= 0 {
					return false
				}
			}
		}
		return true
	}
	return false
}

// formatForExt maps a cache path extension to an encoder name, or "".
func formatForExt(ext string) string {
	switch strings.ToLower(strings.TrimPrefix(ext, ".")) {
	case "jpeg", "jpg":
		return "jpeg"
	case "png":
		return "png"
	case "webp":
		return "webp"
	case "auto":
		return "auto"
	}
	return ""
}

// checkRequestPath refuses paths that could smuggle a separator or escape a
// root whatever a route's regex captures: NUL and control characters, invalid
// UTF-8, backslashes, and encoded slashes.
func checkRequestPath(p, raw string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w: path must start with /", errBadPath)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' || r == 0xfffd {
			return fmt.Errorf("%w: control character, backslash or invalid UTF-8", errBadPath)
		}
	}
	lower := strings.ToLower(raw)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
		return fmt.Errorf("%w: encoded slash", errBadPath)
	}
	return nil
}

// originPath checks a rendered origin path: it must stay under the origin's
// root, so no segment may be "..".
func originPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if hasDotSegment(p) {
		return "", fmt.Errorf("%w: origin path %q leaves the origin root", errBadPath, p)
	}
	return p, nil
}

// cachePath checks a rendered cache path and returns it relative to
// cache_dir. It refuses anything that could leave cache_dir or collide with
// the cache's own sidecar and temporary files.
func cachePath(p string) (string, error) {
	rel := strings.TrimLeft(p, "/")
	if rel == "" || hasDotSegment(rel) || strings.Contains(rel, "//") {
		return "", fmt.Errorf("%w: cache path %q", errBadPath, p)
	}
	if len(rel) > maxCachePathLen {
		return "", fmt.Errorf("%w: cache path of %d bytes", errLongPath, len(rel))
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == reservedDir || strings.HasPrefix(seg, tempPrefix) ||
			strings.HasSuffix(seg, metaSuffix) {
			return "", fmt.Errorf("%w: cache path %q uses a reserved name", errBadPath, p)
		}
		// The sidecar's name is the longest the filesystem must take.
		if len(seg)+len(metaSuffix) > maxNameLen {
			return "", fmt.Errorf("%w: cache path segment of %d bytes", errLongPath, len(seg))
		}
	}
	return rel, nil
}

func hasDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." || seg == "." {
			return true
		}
	}
	return false
}

// template is a parsed str.format-style template: literal text and {name}
// fields; "{{" and "}}" stand for braces.
type template struct {
	raw   string
	parts []tmplPart
}

type tmplPart struct {
	lit   string
	field string // set for a field, empty for a literal
}

func parseTemplate(s string) (template, error) {
	t := template{raw: s}
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "{{"), strings.HasPrefix(s[i:], "}}"):
			lit.WriteByte(s[i])
			i++
		case s[i] == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return t, fmt.Errorf("unclosed { in %q", s)
			}
			name := s[i+1 : i+end]
			if !validGroupName(name) {
				return t, fmt.Errorf("field {%s} in %q is not a group name", name, s)
			}
			if lit.Len() > 0 {
				t.parts = append(t.parts, tmplPart{lit: lit.String()})
				lit.Reset()
			}
			t.parts = append(t.parts, tmplPart{field: name})
			i += end
		case s[i] == '}':
			return t, fmt.Errorf("single } in %q", s)
		default:
			lit.WriteByte(s[i])
		}
	}
	if lit.Len() > 0 {
		t.parts = append(t.parts, tmplPart{lit: lit.String()})
	}
	return t, nil
}

func validGroupName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9'
		if !ok {
			return false
		}
	}
	return true
}

// render fills the fields from groups. A group that did not take part in the
// match renders as the empty string (the original wrote "None").
func (t template) render(groups map[string]string) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.field != "" {
			b.WriteString(groups[p.field])
		} else {
			b.WriteString(p.lit)
		}
	}
	return b.String()
}

func (t template) fields() []string {
	var f []string
	for _, p := range t.parts {
		if p.field != "" {
			f = append(f, p.field)
		}
	}
	return f
}

// literalDotSegment reports whether the template's own text holds a whole
// "." or ".." path segment, one that no field can complete into a name.
func (t template) literalDotSegment() bool {
	for i, p := range t.parts {
		if p.field != "" {
			continue
		}
		segs := strings.Split(p.lit, "/")
		for j, seg := range segs {
			whole := (j > 0 || i == 0) && (j < len(segs)-1 || i == len(t.parts)-1)
			if whole && (seg == "." || seg == "..") {
				return true
			}
		}
	}
	return false
}

// literalExt returns the extension when the template ends in literal text
// holding it, so that it can be checked at load time.
func (t template) literalExt() (string, bool) {
	if len(t.parts) == 0 || t.parts[len(t.parts)-1].field != "" {
		return "", false
	}
	last := t.parts[len(t.parts)-1].lit
	dot := strings.LastIndexByte(last, '.')
	if dot < 0 || strings.Contains(last[dot:], "/") {
		return "", false
	}
	return last[dot:], true
}
