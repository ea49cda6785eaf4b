// purge.go removes a cached source and every variant made from it, for
// POST /purge on the admin listener.
package main

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"strings"
)

// purgeResult is the JSON answer to POST /purge.
type purgeResult struct {
	Path    string   `json:"path"`    // the URL asked for
	Route   string   `json:"route"`   // the action it matched, "routing[0].proxy"
	Source  string   `json:"source"`  // cache path of its source
	Removed []string `json:"removed"` // cache paths removed, the source first
}

// purge removes what the cache holds for a request URL (a path with an
// optional query): the source file of the action the URL matches, then
// every variant that any resize action would make from that source, with
// their sidecars. It holds no index of variants; they are found from the
// route templates:
//
//  1. For each resize action, the source path is matched against a regex
//     made from its cache_path_source, each {field} standing for the
//     pattern of that group in url_re (width, height, quality, fit and
//     gravity for their normalised forms). This recovers the groups that
//     decide the source, such as base=img/cat and ext=png from
//     img/cat/source.png.
//  2. cache_path_resized is rendered with those groups and "*" for every
//     other field (img/cat-*x*-*-q**.*) and globbed in cache_dir.
//  3. Each file found must match cache_path_resized as a regex built the
//     same way, so img/cat-2-300x0-0-q75.webp, a variant of img/cat-2, is
//     not taken for one of img/cat: {width} must be digits.
//
// A purge racing a fetch of the same file may leave the new copy behind.
func (s *server) purge(target string) (*purgeResult, error) {
	u, err := url.Parse(target)
	if err != nil || !strings.HasPrefix(u.Path, "/") {
		return nil, fmt.Errorf("%w: purge path %q must start with /", errBadPath, target)
	}
	m, err := s.router.match(u.Path, u.RawPath, u.RawQuery)
	if err != nil {
		return nil, err
	}
	res := &purgeResult{Path: target, Route: m.action.key, Source: m.sourcePath,
		Removed: []string{}}
	seen := map[string]bool{}
	remove := func(rel string) {
		if !seen[rel] && s.removeEntry(rel) {
			res.Removed = append(res.Removed, rel)
		}
		seen[rel] = true
	}

	remove(m.sourcePath)
	if m.variantPath != "" {
		remove(m.variantPath)
	}
	for _, a := range s.router.actions {
		if a.kind == actionResize {
			for _, rel := range s.variantsOf(a, m.sourcePath) {
				remove(rel)
			}
		}
	}
	for _, rel := range res.Removed {
		s.removeEmptyDirs(path.Dir(rel))
	}
	s.log.Info("purged", "path", target, "source", m.sourcePath, "removed", len(res.Removed))
	return res, nil
}

// removeEmptyDirs removes dir, a cache path, and its parents while they are
// empty, up to the cache directory itself (os.Remove keeps a directory
// that is not empty). A store racing it makes the directory again.
func (s *server) removeEmptyDirs(dir string) {
	for dir != "." && dir != "/" && dir != "" {
		if os.Remove(s.cache.abs(dir)) != nil {
			return
		}
		dir = path.Dir(dir)
	}
}

// removeEntry deletes the file at rel and its sidecar and tells the
// cleaner. It reports whether either existed.
func (s *server) removeEntry(rel string) bool {
	p := s.cache.abs(rel)
	_, err1 := os.Lstat(p)
	_, err2 := os.Lstat(p + metaSuffix)
	if err1 != nil && err2 != nil {
		return false
	}
	s.cache.remove(rel)
	if s.cleaner != nil {
		s.cleaner.Forget(p)
	}
	return true
}

// variantsOf lists the cached variants that resize action a made from the
// source at src, as cache paths. It finds none when a's source template
// cannot have rendered src, or when a's variant template shares no field
// with its source template (every variant of every source would look alike).
func (s *server) variantsOf(a *action, src string) []string {
	pats := fieldPatterns(a)
	groups, ok := invert(a.sourceTmpl, pats, src)
	if !ok {
		return nil
	}
	fixed := false
	for _, f := range a.resizedTmpl.fields() {
		_, in := groups[f]
		fixed = fixed || in
	}
	if !fixed {
		return nil
	}
	re, err := templateRegexp(a.resizedTmpl, pats, groups, false)
	if err != nil {
		return nil
	}
	glob := strings.TrimLeft(globPattern(a.resizedTmpl, groups), "/")
	found, _ := filepath.Glob(filepath.Join(s.cache.dir, filepath.FromSlash(glob)))
	var out []string
	for _, p := range found {
		rel, err := filepath.Rel(s.cache.dir, p)
		if err != nil {
			continue
		}
		rel = filepath.ToSlash(rel)
		name := rel[strings.LastIndexByte(rel, '/')+1:]
		if strings.HasSuffix(name, metaSuffix) || strings.HasPrefix(name, tempPrefix) {
			continue
		}
		if re.MatchString(rel) || re.MatchString("/"+rel) {
			out = append(out, rel)
		}
	}
	return out
}

// fieldPatterns returns, for each named group of a's url_re, a regex for
// the text it renders: its own pattern, or nothing at all when the group
// took no part in the match. Groups that a resize action normalises get
// the pattern of their normal form.
func fieldPatterns(a *action) map[string]string {
	pats := map[string]string{}
	re, err := syntax.Parse(a.re.String(), syntax.Perl)
	if err != nil {
		return pats
	}
	var walk func(*syntax.Regexp)
	walk = func(r *syntax.Regexp) {
		if r.Op == syntax.OpCapture && r.Name != "" {
			pats[r.Name] = "(?:" + r.Sub[0].String() + ")?"
		}
		for _, sub := range r.Sub {
			walk(sub)
		}
	}
	walk(re)
	if a.kind == actionResize {
		for _, f := range []string{"width", "height", "quality"} {
			pats[f] = "[0-9]+"
		}
		// As router.normalise renders them: fit 0 or 1; gravity empty, or
		// "-top" and the like when a crop is anchored off-centre.
		pats["fit"], pats["gravity"] = "[01]", "(?:-[a-z]+)?"
	}
	return pats
}

// invert recovers the fields of t from a rendered path: it returns the
// groups that render t as rel (or as "/"+rel: cache paths lose their
// leading slash), and false when none do.
func invert(t template, pats map[string]string, rel string) (map[string]string, bool) {
	re, err := templateRegexp(t, pats, nil, true)
	if err != nil {
		return nil, false
	}
	fields := t.fields()
	for _, cand := range []string{rel, "/" + rel} {
		sub := re.FindStringSubmatch(cand)
		if sub == nil {
			continue
		}
		groups := map[string]string{}
		ok := true
		for i, f := range fields {
			if v, seen := groups[f]; seen && v != sub[i+1] {
				ok = false // a field used twice took two values
			}
			groups[f] = sub[i+1]
		}
		if ok {
			return groups, true
		}
	}
	return nil, false
}

// templateRegexp builds an anchored regex for the paths t renders: fields
// in fixed match their value, other fields their pattern, captured in
// order when capture is set.
func templateRegexp(t template, pats, fixed map[string]string,
	capture bool) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString(`\A`)
	for _, p := range t.parts {
		switch v, ok := fixed[p.field]; {
		case p.field == "":
			b.WriteString(regexp.QuoteMeta(p.lit))
		case ok:
			b.WriteString(regexp.QuoteMeta(v))
		default:
			pat, known := pats[p.field]
			if !known {
				pat = "[^/]*"
			}
			if capture {
				b.WriteString("(" + pat + ")")
			} else {
				b.WriteString("(?:" + pat + ")")
			}
		}
	}
	b.WriteString(`\z`)
	return regexp.Compile(b.String())
}

// globPattern renders t with the fields in fixed and "*" for the others.
//
// TODO: "*" does not cross "/", so a variant whose free fields hold a
// slash is not found; a recursive walk below the fixed prefix would be.
func globPattern(t template, fixed map[string]string) string {
	var b strings.Builder
	for _, p := range t.parts {
		switch v, ok := fixed[p.field]; {
		case p.field == "":
			b.WriteString(globEscape(p.lit))
		case ok:
			b.WriteString(globEscape(v))
		default:
			b.WriteString("*")
		}
	}
	return b.String()
}

// globEscape quotes the characters filepath.Match treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
