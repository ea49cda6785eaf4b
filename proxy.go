// proxy.go is the proxy action: Katana as a shared HTTP cache (RFC 9111) of
// origin responses of any kind, with end-to-end headers passed through.
package main

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// errOnlyIfCached answers a request with only-if-cached that the cache
// cannot satisfy (RFC 9111 section 5.2.1.7): 504.
var errOnlyIfCached = errors.New("not in cache (only-if-cached)")

// proxyOutcome is what one origin request produced, for a proxied URL or a
// resize action's source.
type proxyOutcome struct {
	e      *entry      // the stored entry, or nil when the answer was not stored
	how    string      // miss, revalidated, stale, pass, hit
	status int         // of an answer that was not stored
	header http.Header // of an answer that was not stored
	body   *os.File    // of an answer that was not stored, already unlinked
}

// reuseKind says whether and how a stored response may answer a request.
type reuseKind int

const (
	reuseNo    reuseKind = iota // ask the origin
	reuseFresh                  // fresh enough for this request
	reuseStale                  // stale, but the request accepts it (max-stale)
	reuseSWR                    // stale within stale-while-revalidate: serve and refresh
)

// proxySource answers a GET or HEAD for a proxy action from the cache when
// a stored response may be reused, else from the origin, storing what may
// be stored. Concurrent misses share one origin request.
func (s *server) proxySource(ctx context.Context, r *http.Request, m *routeMatch) (*result, error) {
	rel := m.sourcePath
	res := &result{file: s.cache.abs(rel), rel: rel, cache: "hit"}
	old := s.cache.lookup(rel)
	if old != nil && old.Header != nil && !varyMatches(old, r.Header) {
		old = nil
	}
	if old != nil {
		switch s.reuse(old, r) {
		case reuseFresh:
			res.e, res.fresh = old, old
			return res, nil
		case reuseStale:
			res.e, res.fresh, res.cache = old, old, "stale"
			return res, nil
		case reuseSWR:
			s.refreshInBackground(r, m, old)
			res.e, res.fresh, res.cache = old, old, "stale"
			return res, nil
		}
	}
	if requestDirectives(r.Header).has("only-if-cached") {
		return nil, errOnlyIfCached
	}

	reqHeader := r.Header.Clone()
	v, shared, err := s.flights.do(ctx, "proxy:"+rel, func(ctx context.Context) (any, error) {
		return s.proxyFetch(ctx, reqHeader, m, old)
	})
	if err != nil {
		return nil, err
	}
	out := v.(*proxyOutcome)
	if shared && (out.e == nil || (out.e.Header != nil && !varyMatches(out.e, r.Header))) {
		// The answer fetched for another request cannot serve this one.
		if out, err = s.proxyFetch(ctx, r.Header, m, old); err != nil {
			return nil, err
		}
		shared = false
	}
	if out.e == nil {
		res.rel, res.file, res.cache = "", "", "pass"
		res.pass = out
		return res, nil
	}
	res.e, res.fresh, res.cache = out.e, out.e, out.how
	if shared && out.how == "miss" {
		res.cache = "coalesced"
	}
	return res, nil
}

// proxyFetch asks the origin for m, conditionally when old is given, and
// stores the answer when RFC 9111 allows. It runs inside a flight.
func (s *server) proxyFetch(ctx context.Context, reqHeader http.Header, m *routeMatch,
	old *entry) (*proxyOutcome, error) {
	rel := m.sourcePath
	o := s.origins[m.action.origin]
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OriginFetchTimeout.Duration)
	defer cancel()

	h := forwardHeader(reqHeader)
	if !m.action.passThrough {
		// Image routes share their files with resize actions, which need
		// the bytes as they are.
		h.Del("Accept-Encoding")
	}
	if old != nil {
		if etag := old.originETag(); etag != "" {
			h.Set("If-None-Match", etag)
		}
		if old.LastModified != "" {
			h.Set("If-Modified-Since", old.LastModified)
		}
	}
	requestTime := s.now()
	s.stats.fetches.Add(1)
	resp, err := o.Do(ctx, http.MethodGet, m.originPath, m.query, h, nil)
	if err != nil {
		return s.staleOnError(old, rel, err)
	}
	defer resp.Body.Close()
	responseTime := s.now()
	header := endToEnd(resp.Header)

	if resp.StatusCode == http.StatusNotModified && old != nil {
		old.Header = mergeNotModified(old.Header, header)
		s.restamp(old, requestTime, responseTime)
		if err := s.cache.writeMeta(rel, old); err != nil {
			return nil, storageError(err)
		}
		return &proxyOutcome{e: old, how: "revalidated"}, nil
	}
	if resp.StatusCode >= 500 && old != nil {
		if out, err := s.staleOnError(old, rel, fmt.Errorf("%w: status %d", errOriginFailed,
			resp.StatusCode)); err == nil {
			return out, nil
		}
	}
	if !m.action.passThrough {
		if err := s.imageAnswer(resp, header, m, old != nil); err != nil {
			return nil, err
		}
	}

	policy := storePolicy{
		defaultTTL:       s.cfg.CacheDefaultExpires.Duration,
		storeUnvalidated: m.action.storeUnvalidated,
	}
	getReq := &http.Request{Method: http.MethodGet, Header: reqHeader}
	ok, why := policy.storable(getReq, resp.StatusCode, header)
	if !ok {
		if old != nil {
			s.cache.remove(rel)
		}
		s.log.Debug("not stored", "cache_path", rel, "status", resp.StatusCode, "why", why)
		return s.passThrough(resp, header, m)
	}

	p, err := s.cache.create(rel)
	if err != nil {
		return nil, err
	}
	if err := s.copyBody(p, resp); err != nil {
		p.Abort()
		return s.staleOnError(old, rel, err)
	}
	if !m.action.passThrough {
		if err := checkImageBody(p.File, m.originPath); err != nil {
			p.Abort()
			return nil, err
		}
	}
	e := &entry{
		Status:       resp.StatusCode,
		Header:       header,
		ContentType:  header.Get("Content-Type"),
		ETag:         header.Get("ETag"),
		LastModified: header.Get("Last-Modified"),
		Vary:         selecting(reqHeader, varyFields(header)),
	}
	if e.ContentType == "" {
		head := make([]byte, 512)
		n, _ := p.ReadAt(head, 0)
		e.ContentType = contentType(head[:n], "")
	}
	s.restamp(e, requestTime, responseTime)
	if e, err = s.commitFetched(p, e); err != nil {
		return s.staleOnError(old, rel, err)
	}
	return &proxyOutcome{e: e, how: "miss"}, nil
}

// imageAnswer holds an image route to the original's contract: a 404 or
// 410 is Katana's 404 (and drops what was stored), any other status but 200
// is an origin failure, and a body the origin gzipped unasked is decoded,
// since resize actions share the file and need the image itself.
func (s *server) imageAnswer(resp *http.Response, header http.Header, m *routeMatch,
	stored bool) error {
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		if stored {
			s.cache.remove(m.sourcePath)
		}
		return fmt.Errorf("%w: %s answered %d", errNotFound, m.originPath, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%w: %s answered %d", errOriginFailed, m.originPath, resp.StatusCode)
	}
	return gunzipBody(resp, header)
}

// commitFetched makes a fetched file visible: a 200 whose origin sent no
// ETag gets a strong one from its content, so clients can revalidate.
func (s *server) commitFetched(p *pending, e *entry) (*entry, error) {
	if e.ETag == "" && e.Status == http.StatusOK {
		etag, err := hashFile(p.File)
		if err != nil {
			p.Abort()
			return nil, storageError(err)
		}
		e.ETag, e.ETagSynthetic = etag, true
	}
	return p.Commit(e)
}

// restamp sets an entry's time, age and lifetime after a fetch or a 304.
func (s *server) restamp(e *entry, requestTime, responseTime time.Time) {
	policy := storePolicy{defaultTTL: s.cfg.CacheDefaultExpires.Duration}
	e.Stored = responseTime
	e.InitialAge = initialAge(e.Header, requestTime, responseTime).Milliseconds()
	e.TTL = int64(policy.lifetime(e.Status, e.Header, responseTime) / time.Second)
	if etag := e.Header.Get("ETag"); etag != "" {
		e.ETag, e.ETagSynthetic = etag, false
	}
	if lm := e.Header.Get("Last-Modified"); lm != "" {
		e.LastModified = lm
	}
}

// copyBody writes an origin body to w, refusing one over max_source_bytes
// or shorter than its Content-Length.
func (s *server) copyBody(w io.Writer, resp *http.Response) error {
	limit := s.cfg.MaxSourceBytes
	if limit <= 0 {
		limit = 1 << 62
	}
	cw := &errWriter{w: w}
	n, err := io.Copy(cw, io.LimitReader(resp.Body, limit+1))
	switch {
	case cw.err != nil:
		return storageError(cw.err)
	case err != nil:
		return fmt.Errorf("%w: reading body: %w", errOriginFailed, err)
	case n > limit:
		return fmt.Errorf("%w: body over %d bytes", errTooLarge, limit)
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		return fmt.Errorf("%w: body of %d bytes, Content-Length %d", errOriginFailed, n,
			resp.ContentLength)
	}
	return nil
}

// passThrough keeps an answer that may not be stored in an unlinked
// temporary file, for the one request that asked for it. Under an image route
// (no pass_through) the body must be an image.
func (s *server) passThrough(resp *http.Response, header http.Header,
	m *routeMatch) (*proxyOutcome, error) {
	f, err := os.CreateTemp(s.cache.tmpDir(), tempPrefix+"pass-*")
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(s.cache.tmpDir(), 0o755); err == nil {
			f, err = os.CreateTemp(s.cache.tmpDir(), tempPrefix+"pass-*")
		}
	}
	if err != nil {
		return nil, storageError(err)
	}
	os.Remove(f.Name())
	if err := s.copyBody(f, resp); err != nil {
		f.Close()
		return nil, err
	}
	if !m.action.passThrough {
		if err := checkImageBody(f, m.originPath); err != nil {
			f.Close()
			return nil, err
		}
	}
	return &proxyOutcome{how: "pass", status: resp.StatusCode, header: header, body: f}, nil
}

// staleOnError serves old when the origin failed and serving stale is
// allowed: within stale-if-error, or within max_stale_on_error when
// serve_stale_on_error is on, and never when the response forbids it.
func (s *server) staleOnError(old *entry, rel string, err error) (*proxyOutcome, error) {
	if old == nil || errors.Is(err, context.Canceled) {
		return nil, err
	}
	rs := old.directives()
	if rs.has("must-revalidate") || rs.has("proxy-revalidate") || rs.has("s-maxage") ||
		rs.has("no-cache") {
		return nil, err
	}
	stale := old.age(s.now()) - s.effectiveLifetime(old)
	window := time.Duration(0)
	if s.cfg.ServeStaleOnError {
		window = s.cfg.MaxStaleOnError.Duration
	}
	if v, ok, valid := rs.seconds("stale-if-error"); ok && valid {
		window = max(window, v)
	}
	if stale > window {
		return nil, err
	}
	s.log.Warn("origin failed, serving stale copy", "cache_path", rel, "err", err)
	return &proxyOutcome{e: old, how: "stale"}, nil
}

// reuse decides whether old may answer r (RFC 9111 section 4).
func (s *server) reuse(old *entry, r *http.Request) reuseKind {
	rq := requestDirectives(r.Header)
	rs := old.directives()
	if rq.has("no-cache") || rs.has("no-cache") && rs["no-cache"] == "" {
		return reuseNo
	}
	if r.Header.Get("Authorization") != "" && !rs.has("public") && !rs.has("s-maxage") &&
		!rs.has("must-revalidate") {
		return reuseNo
	}
	age := old.age(s.now())
	if v, ok, valid := rq.seconds("max-age"); ok && (!valid || age > v) {
		return reuseNo
	}
	left := s.effectiveLifetime(old) - age
	if v, ok, valid := rq.seconds("min-fresh"); ok && (!valid || left < v) {
		return reuseNo
	}
	if left > 0 {
		return reuseFresh
	}
	if rs.has("must-revalidate") || rs.has("proxy-revalidate") || rs.has("s-maxage") {
		return reuseNo
	}
	if v, ok := rq["max-stale"]; ok {
		if limit, err := strconv.ParseInt(v, 10, 64); v == "" || err == nil && -left <= time.Duration(limit)*time.Second {
			return reuseStale
		}
	}
	if v, ok, valid := rs.seconds("stale-while-revalidate"); ok && valid && -left <= v {
		return reuseSWR
	}
	return reuseNo
}

// refreshInBackground revalidates old once, whatever the number of
// requests that see it stale, without holding any of them up.
func (s *server) refreshInBackground(r *http.Request, m *routeMatch, old *entry) {
	reqHeader := r.Header.Clone()
	ctx := context.WithoutCancel(r.Context())
	go s.flights.do(ctx, "proxy:"+m.sourcePath, func(ctx context.Context) (any, error) {
		return s.proxyFetch(ctx, reqHeader, m, old)
	})
}

// requestDirectives parses a request's Cache-Control, with Pragma: no-cache
// standing for no-cache when there is no Cache-Control (RFC 9111 5.4).
func requestDirectives(h http.Header) directives {
	d := parseDirectives(h)
	if len(h.Values("Cache-Control")) == 0 {
		for _, p := range h.Values("Pragma") {
			if strings.Contains(strings.ToLower(p), "no-cache") {
				d["no-cache"] = ""
			}
		}
	}
	return d
}

// forwardHeader is what goes upstream of a client's request headers: the
// end-to-end ones, less the conditionals and ranges that Katana evaluates
// itself against what it stores.
func forwardHeader(h http.Header) http.Header {
	out := endToEnd(h)
	for _, k := range []string{"If-None-Match", "If-Modified-Since", "If-Match",
		"If-Unmodified-Since", "If-Range", "Range"} {
		out.Del(k)
	}
	return out
}

// varyMatches reports whether a request selects the stored response.
func varyMatches(e *entry, h http.Header) bool {
	fields := varyFields(e.Header)
	if len(fields) == 0 {
		return true
	}
	got := selecting(h, fields)
	for _, f := range fields {
		if got[f] != e.Vary[f] {
			return false
		}
	}
	return true
}

// forward sends a request with a method other than GET or HEAD to the
// origin, streams the answer back, and invalidates what the cache holds for
// the URL after a success (RFC 9111 section 4.4).
func (s *server) forward(w http.ResponseWriter, r *http.Request, m *routeMatch) error {
	o := s.origins[m.action.origin]
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.OriginFetchTimeout.Duration)
	defer cancel()
	resp, err := o.Do(ctx, r.Method, m.originPath, r.URL.RawQuery, endToEnd(r.Header), r.Body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 400 {
		s.cache.remove(m.sourcePath)
		for _, k := range []string{"Location", "Content-Location"} {
			s.invalidateURL(r, resp.Header.Get(k))
		}
	}
	for k, v := range endToEnd(resp.Header) {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, err = io.Copy(w, resp.Body)
	return err
}

// invalidateURL removes the entry a same-host URL maps to.
func (s *server) invalidateURL(r *http.Request, ref string) {
	if ref == "" {
		return
	}
	u, err := url.Parse(ref)
	if err != nil || (u.Host != "" && u.Host != r.Host) {
		return
	}
	target := r.URL.ResolveReference(u)
	if m, err := s.router.match(target.Path, target.RawPath, target.RawQuery); err == nil &&
		m.action.kind == actionProxy {
		s.cache.remove(m.sourcePath)
	}
}

// gunzipBody replaces a gzip-encoded body by its decoded bytes and drops
// the headers that described the encoding. A bad gzip stream fails the
// body's read, and so the fetch (502).
func gunzipBody(resp *http.Response, header http.Header) error {
	if !strings.EqualFold(strings.TrimSpace(header.Get("Content-Encoding")), "gzip") {
		return nil
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		return fmt.Errorf("%w: gzip body: %w", errOriginFailed, err)
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{zr, resp.Body}
	resp.ContentLength = -1
	header.Del("Content-Encoding")
	header.Del("Content-Length")
	return nil
}
