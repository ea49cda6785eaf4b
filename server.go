// server.go is the HTTP handler: it routes a request, gets the file from the
// cache or the origin, makes the variant, and answers with caching headers.
package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"image/color"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "2.0.0-dev"

// Handler errors, mapped to statuses by errorStatus with the others.
var (
	// errInternal marks a bug: a recovered panic or an impossible state.
	errInternal = errors.New("internal error")
	// errMethod answers a method the matched action does not take: 405.
	errMethod = errors.New("method not allowed")
	// errSourceGone says a cached source vanished (the cleaner) before a
	// variant could be made from it; get fetches it again.
	errSourceGone = errors.New("cached source went away")
)

// placeholderMaxAge is what clients may cache a placeholder answer for.
const placeholderMaxAge = 60 * time.Second

// reservedDir holds files the cache makes for itself, such as resized
// placeholders; no route can render a path into it.
const reservedDir = ".katana"

// server answers requests. It is built once from a Config and is safe for
// concurrent use.
type server struct {
	cfg     *Config
	log     *slog.Logger
	router  *router
	cache   *diskCache
	origins map[string]*Origin
	flights flightGroup
	work    *admission  // bounds concurrent image work by memory and CPU
	bg      color.NRGBA // the background key, parsed
	now     func() time.Time
	stats   serverStats
	cleaner *Cleaner // nil when no cleaner runs (tests, --check)
	metrics *metrics // nil records nothing; set before the first request
}

// serverStats counts the hot path; read with Load.
type serverStats struct {
	fetches atomic.Int64 // origin fetches started
	resizes atomic.Int64 // variants made
}

// newServer builds the handler from a validated config.
func newServer(cfg *Config, log *slog.Logger) (*server, error) {
	rt, err := newRouter(cfg)
	if err != nil {
		return nil, err
	}
	c, err := newDiskCache(cfg.CacheDir)
	if err != nil {
		return nil, err
	}
	bg, err := parseColor(cfg.Background)
	if err != nil {
		return nil, fmt.Errorf("background: %w", err)
	}
	s := &server{
		cfg:     cfg,
		log:     log,
		router:  rt,
		cache:   c,
		origins: map[string]*Origin{},
		work:    newAdmission(cfg.memoryBudget(), cfg.MaxQueue),
		bg:      bg,
		now:     time.Now,
	}
	var errs []error
	for _, name := range sortedKeys(cfg.Origins) {
		o, err := newOrigin(name, cfg.Origins[name], s.originOptions())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.origins[name] = o
	}
	if len(errs) > 0 {
		s.Close()
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func (s *server) originOptions() originOptions {
	return originOptions{
		ProbeTimeout: s.cfg.OriginTimeout.Duration,
		FetchTimeout: s.cfg.OriginFetchTimeout.Duration,
		MaxBodyBytes: s.cfg.MaxSourceBytes,
		Proxy:        s.cfg.Proxy,
		UserAgent:    "Katana/" + version,
		Logger:       s.log,
		Observe:      s.observeOrigin,
	}
}

// Close releases the origins' connections and goroutines.
func (s *server) Close() {
	for _, o := range s.origins {
		o.Close()
	}
}

// result is a file ready to be served.
type result struct {
	file        string // absolute path of the data file
	rel         string // path relative to cache_dir; "" when outside it
	e           *entry // metadata of the file
	fresh       *entry // entry whose freshness the answer advertises
	cache       string // hit, miss, coalesced, stale, revalidated, pass
	placeholder bool
	pass        *proxyOutcome // an answer that was not stored, served once
	vary        bool          // the format was negotiated from Accept
}

// ServeHTTP routes the request, gets the file and answers.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	r = withTrace(r)
	lw := &logWriter{ResponseWriter: w, status: http.StatusOK}
	var res *result
	var m *routeMatch
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic serving request", "path", r.URL.Path, "panic", p)
			if !lw.wrote {
				s.fail(lw, r, fmt.Errorf("%w: %v", errInternal, p))
			}
		}
		s.logRequest(r, lw, start, m, res)
	}()

	safe := r.Method == http.MethodGet || r.Method == http.MethodHead
	m, err := s.router.match(r.URL.Path, r.URL.RawPath, r.URL.RawQuery)
	if err != nil && !safe {
		w.Header().Set("Allow", "GET, HEAD")
		err = errMethod
	}
	if err != nil {
		s.fail(lw, r, err)
		return
	}
	if s.log.Enabled(r.Context(), slog.LevelDebug) { // spares a hit the arguments
		s.log.Debug("route matched", "path", r.URL.Path, "route", m.action.key,
			"groups", m.groups, "origin_path", m.originPath, "source", m.sourcePath,
			"variant", m.variantPath)
	}
	if !m.action.allows(r.Method) {
		w.Header().Set("Allow", m.action.allowHeader())
		s.fail(lw, r, errMethod)
		return
	}
	if !safe {
		if err := s.forward(lw, r, m); err != nil && !lw.wrote {
			s.fail(lw, r, err)
		}
		return
	}

	res, err = s.get(r, m)
	if errors.Is(err, errNotFound) && s.cfg.NotFoundAs200 {
		res, err = s.placeholder(r.Context(), m)
	}
	if err != nil {
		s.fail(lw, r, err)
		return
	}
	s.serve(lw, r, res, start)
}

// get returns the file a matched request asks for.
func (s *server) get(r *http.Request, m *routeMatch) (*result, error) {
	if m.action.kind == actionProxy {
		return s.proxySource(r.Context(), r, m)
	}
	m.negotiate(r.Header.Get("Accept"))
	// A variant keeps a copy of its source's freshness: while that holds,
	// a hit needs neither the source's entry nor its file.
	if ve := s.cache.lookup(m.variantPath); ve != nil && ve.Source != "" && s.isFresh(ve) {
		return &result{rel: m.variantPath, e: ve, fresh: ve, cache: "hit", vary: m.negotiated}, nil
	}
	src, err := s.source(r.Context(), m)
	if err != nil {
		return nil, err
	}
	res, err := s.variant(r.Context(), m, src)
	if errors.Is(err, errSourceGone) {
		// The cleaner removed the source between its lookup and the job:
		// fetch it again, once.
		if src, err = s.source(r.Context(), m); err == nil {
			res, err = s.variant(r.Context(), m, src)
		}
	}
	if res != nil {
		res.vary = m.negotiated
	}
	return res, err
}

// source returns the source file of m from the cache, fetching or
// revalidating it from the origin when needed. Concurrent misses share one
// fetch; the cache is checked again inside the flight.
func (s *server) source(ctx context.Context, m *routeMatch) (*result, error) {
	rel := m.sourcePath
	res := &result{file: s.cache.abs(rel), rel: rel, cache: "hit"}
	if e := s.cache.lookup(rel); e != nil && s.isFresh(e) {
		res.e, res.fresh = e, e
		return res, nil
	}
	v, shared, err := s.flights.do(ctx, "source:"+rel, func(ctx context.Context) (any, error) {
		old := s.cache.lookup(rel)
		if old != nil && s.isFresh(old) {
			return &proxyOutcome{e: old, how: "hit"}, nil
		}
		return s.fetch(ctx, m, old)
	})
	if err != nil {
		return nil, err
	}
	f := v.(*proxyOutcome)
	res.e, res.fresh, res.cache = f.e, f.e, f.how
	if shared && f.how == "miss" {
		res.cache = "coalesced"
	}
	return res, nil
}

// fetch gets rel from the origin into the cache. old is the stale entry, if
// any: its validators make the request conditional, and it is served when
// the origin fails (the original answered 404 then, spec B8).
func (s *server) fetch(ctx context.Context, m *routeMatch, old *entry) (*proxyOutcome, error) {
	rel := m.sourcePath
	o := s.origins[m.action.origin]
	p, err := s.cache.create(rel)
	if err != nil {
		return s.staleOnError(old, rel, err)
	}
	var v validators
	if old != nil {
		v = validators{ETag: old.originETag(), LastModified: old.LastModified}
	}
	s.stats.fetches.Add(1)
	resp, err := o.Fetch(ctx, m.originPath, v, p)
	if err != nil {
		p.Abort()
		err = localSinkError(err)
		if errors.Is(err, errNotFound) || ctx.Err() != nil {
			return nil, err
		}
		return s.staleOnError(old, rel, err)
	}

	now := s.now()
	if resp.Status == http.StatusNotModified {
		p.Abort()
		if old == nil {
			return nil, fmt.Errorf("%w: 304 to an unconditional request from %s",
				errOriginFailed, resp.Node)
		}
		old.Stored, old.InitialAge = now, 0
		old.TTL = int64(s.policy().lifetime(http.StatusOK, resp.Header, now) / time.Second)
		if etag := resp.Header.Get("ETag"); etag != "" {
			old.ETag, old.ETagSynthetic = etag, false
		}
		if err := s.cache.writeMeta(rel, old); err != nil {
			return nil, storageError(err)
		}
		return &proxyOutcome{e: old, how: "revalidated"}, nil
	}

	if err := checkImageBody(p.File, m.originPath); err != nil {
		p.Abort()
		return nil, err
	}
	head := make([]byte, 512)
	n, _ := p.ReadAt(head, 0)
	e := &entry{
		Status:       http.StatusOK,
		ContentType:  contentType(head[:n], resp.Header.Get("Content-Type")),
		ETag:         resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"),
		Stored:       now,
		TTL:          int64(s.policy().lifetime(http.StatusOK, resp.Header, now) / time.Second),
	}
	if e, err = s.commitFetched(p, e); err != nil {
		return s.staleOnError(old, rel, err)
	}
	return &proxyOutcome{e: e, how: "miss"}, nil
}

// variant returns the resized file of m, making it from src when it is
// missing or was made from another version of the source.
func (s *server) variant(ctx context.Context, m *routeMatch, src *result) (*result, error) {
	rel := m.variantPath
	res := &result{file: s.cache.abs(rel), rel: rel, fresh: src.e, cache: src.cache}
	if e := s.cache.lookup(rel); e != nil && e.Source == src.e.ETag {
		if !e.Stored.Equal(src.e.Stored) {
			// The source was revalidated: carry its freshness over, so the
			// next hits take the short way in get.
			e.Stored, e.TTL, e.InitialAge = src.e.Stored, src.e.TTL, src.e.InitialAge
			s.cache.writeMeta(rel, e)
		}
		res.e = e
		return res, nil
	}
	v, shared, err := s.flights.do(ctx, "variant:"+rel, func(ctx context.Context) (any, error) {
		if e := s.cache.lookup(rel); e != nil && e.Source == src.e.ETag {
			return e, nil
		}
		opt := m.image
		opt.Lossless = m.action.lossless && opt.Format == "webp" &&
			(src.e.ContentType == "image/png" || src.e.ContentType == "image/gif")
		return s.makeVariant(ctx, src, rel, opt, src.e.ETag)
	})
	if err != nil {
		return nil, err
	}
	res.e = v.(*entry)
	if res.cache == "hit" {
		res.cache = "miss"
		if shared {
			res.cache = "coalesced"
		}
	}
	return res, nil
}

// sourceGone says that the file of rel vanished under a job: the copy the
// cache may hold of it goes too, so that it is fetched again.
func (s *server) sourceGone(rel string) error {
	s.cache.forget(rel)
	return fmt.Errorf("%w: %s", errSourceGone, rel)
}

// makeVariant reads the source file, transforms it and stores the result at
// rel. Image work waits for a slot, taken with the request's context.
func (s *server) makeVariant(ctx context.Context, src *result, rel string,
	opt imageOptions, sourceID string) (*entry, error) {
	// The cleaner leaves the source alone while the job needs it. Only its
	// header is read before admission: jobs waiting for memory must not
	// hold their sources in it.
	if src.rel != "" && !src.placeholder {
		defer s.cache.pin(src.rel)()
	}
	need, err := s.jobMemory(src.file, opt)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, s.sourceGone(src.rel)
	}
	if err != nil {
		return nil, fmt.Errorf("read source %s: %w", src.rel, err)
	}
	release, err := s.work.acquire(ctx, need)
	if err != nil {
		return nil, err
	}
	defer release()
	data, err := os.ReadFile(src.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, s.sourceGone(src.rel)
	}
	if err != nil {
		return nil, fmt.Errorf("read source %s: %w", src.rel, err)
	}
	s.stats.resizes.Add(1)
	jobDone := s.metrics.imageJob(opt.Format, need)
	opt.Observe = func(stage string, took time.Duration) {
		s.metrics.imageStage(stage, opt.Format, took)
	}
	out, format, err := s.guardedTransform(ctx, data, opt, src.rel)
	jobDone()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.rel, err)
	}
	e := &entry{
		Status:       http.StatusOK,
		ContentType:  "image/" + format,
		ETag:         variantETag(sourceID, rel),
		LastModified: src.e.LastModified,
		Stored:       src.e.Stored,
		TTL:          src.e.TTL,
		InitialAge:   src.e.InitialAge,
		Source:       sourceID,
	}
	return s.cache.storeBytes(rel, e, out)
}

// probeBytes is how much of a large source is read to estimate its job.
const probeBytes = 256 << 10

// jobMemory estimates the memory a transform of the source file will need,
// its bytes included, from its header. A source whose header does not fit
// in probeBytes, or cannot be read, is estimated high.
func (s *server) jobMemory(file string, opt imageOptions) (int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	head := make([]byte, min(fi.Size(), probeBytes))
	if _, err := io.ReadFull(f, head); err != nil {
		return 0, err
	}
	need := fi.Size() + 64<<20
	if info, err := probe(head); err == nil {
		need = fi.Size() + jobMemory(info, s.withSettings(opt))
	}
	return need, nil
}

// transform runs the image pipeline with the config-wide settings filled in.
func (s *server) transform(ctx context.Context, data []byte, opt imageOptions) ([]byte, string, error) {
	return transformFunc(ctx, data, s.withSettings(opt))
}

// withSettings fills in the config-wide image settings.
func (s *server) withSettings(opt imageOptions) imageOptions {
	opt.Background = s.bg
	opt.WebPMethod = s.cfg.WebPMethod
	opt.MaxSourcePixels = s.cfg.MaxSourcePixels
	opt.MaxAnimationPixels = s.cfg.MaxAnimationPixels
	opt.MaxWidth, opt.MaxHeight = s.cfg.ThumbMaxWidth, s.cfg.ThumbMaxHeight
	return opt
}

// placeholder answers a missing file with not_found_source: as it is for a
// proxy action, resized to the request for a resize action. Resized
// placeholders are kept under reservedDir, never at the real variant's path,
// so the real image replaces nothing and nothing replaces it.
func (s *server) placeholder(ctx context.Context, m *routeMatch) (*result, error) {
	ph, err := filepath.Abs(s.cfg.NotFoundSource)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(ph)
	if err != nil {
		return nil, fmt.Errorf("%w: not_found_source: %w", errNotFound, err)
	}
	id := fmt.Sprintf("%x-%x", fi.Size(), fi.ModTime().UnixNano())
	e := &entry{Status: http.StatusOK, ContentType: sniffFile(ph), Size: fi.Size(), Stored: s.now()}
	src := &result{file: ph, e: e, fresh: e, cache: "placeholder", placeholder: true}
	if rel, err := filepath.Rel(s.cache.dir, ph); err == nil && !strings.HasPrefix(rel, "..") {
		src.rel = filepath.ToSlash(rel)
	}
	if m.action.kind == actionProxy {
		return src, nil
	}

	o := m.image
	rel := fmt.Sprintf("%s/placeholder/%s/%dx%d-%s-%s-q%d.%s", reservedDir, id,
		o.Width, o.Height, o.Fit, o.Gravity, o.Quality, o.Format)
	res := &result{file: s.cache.abs(rel), rel: rel, cache: "placeholder", placeholder: true}
	if ve := s.cache.lookup(rel); ve != nil {
		res.e, res.fresh = ve, ve
		return res, nil
	}
	v, _, err := s.flights.do(ctx, "variant:"+rel, func(ctx context.Context) (any, error) {
		return s.makeVariant(ctx, src, rel, o, id)
	})
	if err != nil {
		return nil, err
	}
	res.e, res.fresh = v.(*entry), v.(*entry)
	return res, nil
}

// isFresh reports whether an entry may be served without asking the origin.
func (s *server) isFresh(e *entry) bool {
	return e.age(s.now()) <= s.effectiveLifetime(e)
}

// effectiveLifetime is how long Katana trusts an entry: its lifetime, or
// cache_default_expires under cache_force_expires, capped by
// external_expires when that is on (spec 6.2).
func (s *server) effectiveLifetime(e *entry) time.Duration {
	ttl := e.lifetime()
	if s.cfg.CacheForceExpires {
		ttl = s.cfg.CacheDefaultExpires.Duration
	}
	if ext := s.cfg.ExternalExpires.Duration; ext > 0 {
		ttl = min(ttl, ext)
	}
	return ttl
}

// policy is the store policy of the config, for image sources.
func (s *server) policy() storePolicy {
	return storePolicy{defaultTTL: s.cfg.CacheDefaultExpires.Duration}
}

// serve writes the file with its caching headers. Conditional requests,
// HEAD and Range are answered by http.ServeContent, or by hand when the body
// is handed to nginx with X-Accel-Redirect.
func (s *server) serve(w http.ResponseWriter, r *http.Request, res *result, start time.Time) {
	if res.pass != nil {
		s.servePass(w, r, res.pass)
		return
	}
	h := w.Header()
	e := res.e
	if e.Header != nil && !res.placeholder {
		for k, v := range e.Header {
			h[k] = append([]string(nil), v...)
		}
		h.Del("Surrogate-Control") // meant for Katana, not for clients
		if res.cache == "hit" || res.cache == "stale" {
			withoutListedFields(h)
		}
	}
	// Direct map writes with values from one allocation: the keys are
	// canonical already, and a hit should not pay for more.
	fv := make(fieldValues, 0, 12)
	if ct := h["Content-Type"]; len(ct) == 0 || ct[0] == "" {
		h["Content-Type"] = fv.one(e.ContentType)
	}
	h["X-Content-Type-Options"] = fv.one("nosniff")
	if e.ETag != "" && !res.placeholder {
		h["Etag"] = fv.one(e.ETag)
	}
	if res.vary {
		h["Vary"] = append(h["Vary"], "Accept")
	}
	now := s.now()
	s.setExpiry(h, res, now, &fv)
	h["X-Response-Time"] = fv.one(responseTime(now.Sub(start)))
	modtime := e.lastModified()

	if s.cfg.AccelRedirect && res.rel != "" && e.Status == http.StatusOK {
		if e.LastModified != "" {
			h.Set("Last-Modified", e.LastModified)
		}
		if notModified(r, e.ETag, modtime) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Method == http.MethodGet {
			h.Set("X-Accel-Redirect", accelURI(s.cfg.AccelRedirectPath, res.rel))
			h.Set("Content-Length", "0") // nginx sends the body
		} else {
			h.Set("Content-Length", strconv.FormatInt(e.Size, 10)) // HEAD: what a GET sends
		}
		return
	}

	if res.rel != "" && e.body != nil && e.Status == http.StatusOK && plainGet(r, h) {
		s.serveHeld(w, r, res, modtime, &fv)
		return
	}
	body, err := s.body(res)
	if err != nil {
		// The file went away between lookup and open (the cleaner); the next
		// request fetches it again.
		s.fail(w, r, fmt.Errorf("open %s: %w", cmp.Or(res.file, res.rel), err))
		return
	}
	defer body.Close()
	if e.Status != http.StatusOK {
		writeBody(w, r, e.Status, body)
		return
	}
	http.ServeContent(contentWriter{w}, r, "", modtime, body)
}

// serveHeld answers a request without preconditions or ranges with a body
// the cache holds in memory: what ServeContent would write, without its
// checks and without a reader over the bytes.
func (s *server) serveHeld(w http.ResponseWriter, r *http.Request, res *result,
	modtime time.Time, fv *fieldValues) {
	e, h := res.e, w.Header()
	s.cache.touched(res.rel, e)
	if !modtime.IsZero() && !modtime.Equal(time.Unix(0, 0)) {
		h["Last-Modified"] = fv.one(e.lastModifiedText())
	}
	h["Accept-Ranges"] = fv.one("bytes")
	h["Content-Length"] = fv.one(strconv.Itoa(len(e.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		writeShared(w, e.body)
	}
}

// contentWriter is w for ServeContent, which drops Cache-Control, ETag and
// Last-Modified from its error answers (416) but not the other fields
// Katana set for the file: Expires and Age go too, so that no cache keeps
// the error for the file's lifetime.
type contentWriter struct{ http.ResponseWriter }

func (w contentWriter) WriteHeader(code int) {
	if code >= http.StatusBadRequest {
		h := w.Header()
		h.Del("Expires")
		h.Del("Age")
	}
	w.ResponseWriter.WriteHeader(code)
}

// ReadFrom keeps sendfile for file bodies.
func (w contentWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(w.ResponseWriter, r)
}

// plainGet reports whether r asks for the whole of an answer with header h
// unconditionally, so that ServeContent would only copy it.
func plainGet(r *http.Request, h http.Header) bool {
	for _, k := range [...]string{"Range", "If-Match", "If-None-Match", "If-Modified-Since",
		"If-Unmodified-Since"} {
		if _, ok := r.Header[k]; ok {
			return false
		}
	}
	_, encoded := h["Content-Encoding"]
	return !encoded
}

// textCache keeps strings made from numbers, a few at a time, for answers
// that make the same ones over and over. The zero value is ready; it is
// safe for concurrent use.
type textCache [8]atomic.Pointer[cachedText]

type cachedText struct {
	key  int64
	text string
}

// get returns the text for key, made by mk when it is not kept.
func (c *textCache) get(key int64, mk func(int64) string) string {
	slot := &c[key&7]
	if t := slot.Load(); t != nil && t.key == key {
		return t.text
	}
	t := &cachedText{key: key, text: mk(key)}
	slot.Store(t)
	return t.text
}

// httpTimes are recent times in the HTTP date format, by second: the Date
// and the Expires of the answers of one second take a slot each.
var httpTimes textCache

// httpTime formats t in the HTTP date format. Answers in the same second
// with the same freshness share one formatting.
func httpTime(t time.Time) string { return httpTimes.get(t.Unix(), formatHTTPSecond) }

func formatHTTPSecond(sec int64) string { return time.Unix(sec, 0).UTC().Format(http.TimeFormat) }

// responseTime formats d as the X-Response-Time value, in milliseconds.
func responseTime(d time.Duration) string {
	b := make([]byte, 0, 16)
	b = strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', 3, 64)
	return string(append(b, " ms"...))
}

// body opens what res serves: the bytes the cache holds in memory, or the
// file, whose bytes are then held when it is small.
func (s *server) body(res *result) (io.ReadSeekCloser, error) {
	if res.rel == "" {
		return os.Open(res.file)
	}
	if res.e.body != nil {
		s.cache.touched(res.rel, res.e)
		return nopCloser{bytes.NewReader(res.e.body)}, nil
	}
	f, release, err := s.cache.open(res.rel)
	if err != nil {
		return nil, err
	}
	defer release()
	if res.e.Size > hotFileMax {
		return f, nil
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, hotFileMax+1))
	if err != nil {
		return nil, err
	}
	s.cache.hold(res.rel, res.e, data)
	return nopCloser{bytes.NewReader(data)}, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// servePass writes an answer that was not stored.
func (s *server) servePass(w http.ResponseWriter, r *http.Request, out *proxyOutcome) {
	defer out.body.Close()
	h := w.Header()
	for k, v := range out.header {
		h[k] = v
	}
	h.Del("Surrogate-Control")
	h.Set("X-Content-Type-Options", "nosniff")
	if out.status == http.StatusOK {
		modtime, _ := http.ParseTime(out.header.Get("Last-Modified"))
		http.ServeContent(w, r, "", modtime, out.body)
		return
	}
	out.body.Seek(0, io.SeekStart)
	writeBody(w, r, out.status, out.body)
}

// writeBody writes a status and a body as they are, the body left out for
// HEAD and for statuses that have none.
func writeBody(w http.ResponseWriter, r *http.Request, status int, body io.Reader) {
	w.WriteHeader(status)
	if r.Method == http.MethodHead || status == http.StatusNoContent ||
		status == http.StatusNotModified || status < 200 {
		return
	}
	io.Copy(w, body)
}

// setExpiry writes Age, and Cache-Control and Expires unless the stored
// origin headers are passed through. Katana's own follow the original's
// contract (spec 6.3): clients may keep the file for max(external_expires,
// lifetime) from the last fetch or revalidation.
func (s *server) setExpiry(h http.Header, res *result, now time.Time, fv *fieldValues) {
	if res.placeholder {
		h.Set("Cache-Control", fmt.Sprintf("max-age=%d", int(placeholderMaxAge/time.Second)))
		h.Set("Expires", now.Add(placeholderMaxAge).UTC().Format(http.TimeFormat))
		return
	}
	e := res.fresh
	age := e.age(now)
	h["Age"] = fv.one(strconv.FormatInt(int64(age/time.Second), 10))
	ext := s.cfg.ExternalExpires.Duration
	if e.Header != nil && ext == 0 && !s.cfg.CacheForceExpires {
		return
	}
	ttl := e.lifetime()
	if s.cfg.CacheForceExpires {
		ttl = s.cfg.CacheDefaultExpires.Duration
	}
	if ext > 0 {
		ttl = max(ttl, ext)
	}
	h["Cache-Control"] = fv.one(maxAge(int64(ttl / time.Second)))
	h["Expires"] = fv.one(httpTime(now.Add(ttl - age)))
}

// fieldValues hands out the one-value slices of header fields from one
// allocation: an answer sets about ten.
type fieldValues []string

func (fv *fieldValues) one(v string) []string {
	if len(*fv) == cap(*fv) {
		*fv = make(fieldValues, 0, 8)
	}
	*fv = append(*fv, v)
	n := len(*fv)
	return (*fv)[n-1 : n : n] // a full slice: an append elsewhere copies
}

// maxAges are recent Cache-Control values, by their number of seconds.
var maxAges textCache

// maxAge returns "max-age=sec", made once for the lifetimes in use.
func maxAge(sec int64) string { return maxAges.get(sec, formatMaxAge) }

func formatMaxAge(sec int64) string { return "max-age=" + strconv.FormatInt(sec, 10) }

// notModified evaluates If-None-Match (weak comparison, lists and "*"), and
// If-Modified-Since only when If-None-Match is absent (RFC 9110 13.2.2).
func notModified(r *http.Request, etag string, modtime time.Time) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if etag == "" {
			return false
		}
		for _, t := range strings.Split(inm, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
				return true
			}
		}
		return false
	}
	ims, err := http.ParseTime(r.Header.Get("If-Modified-Since"))
	return err == nil && !modtime.IsZero() && !modtime.Truncate(time.Second).After(ims)
}

// fail answers an error with its status and a short message; the log gets
// the cause.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := errorStatus(err)
	if s.cleaner != nil && isDiskFull(err) {
		s.cleaner.DiskFull()
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("ETag")
	h.Del("Last-Modified")
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	if lw, ok := w.(*logWriter); ok {
		lw.err = err
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		io.WriteString(w, msg+"\n")
	}
}

// errorStatus maps an error to a status and a message for the client.
func errorStatus(err error) (int, string) {
	switch {
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed, "method not allowed"
	case errors.Is(err, errLongPath):
		return http.StatusRequestURITooLong, "path too long"
	case errors.Is(err, errBadPath), errors.Is(err, errBadOriginPath):
		return http.StatusBadRequest, "bad request path"
	case errors.Is(err, errSizeNotAllowed):
		return http.StatusBadRequest, "size not allowed"
	case errors.Is(err, errBadSignature):
		return http.StatusForbidden, "invalid signature"
	case errors.Is(err, errNoRoute), errors.Is(err, errNotFound):
		return http.StatusNotFound, "not found"
	case errors.Is(err, errSourceTooLarge), errors.Is(err, errAnimationTooLarge),
		errors.Is(err, errJobTooLarge):
		return http.StatusUnprocessableEntity, "source image too large"
	case errors.Is(err, errNotImage):
		return http.StatusUnsupportedMediaType, "origin file is not a supported image"
	case errors.Is(err, errBadImage):
		return http.StatusBadGateway, "origin image could not be decoded"
	case errors.Is(err, errTooLarge):
		return http.StatusBadGateway, "origin file too large"
	case errors.Is(err, errOriginTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, errOnlyIfCached):
		return http.StatusGatewayTimeout, "origin timed out"
	case errors.Is(err, errOriginFailed):
		return http.StatusBadGateway, "origin failed"
	case errors.Is(err, errStorage):
		return http.StatusServiceUnavailable, "cache unavailable"
	case errors.Is(err, errBusy):
		return http.StatusServiceUnavailable, "busy, retry later"
	case errors.Is(err, context.Canceled):
		return 499, "client closed request"
	}
	return http.StatusInternalServerError, "internal error"
}

// logWriter records what was written, for the access log.
type logWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
	err    error
}

func (w *logWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	w.noteWriteError(err)
	return n, err
}

// noteWriteError keeps the first error of writing the answer (a client cut
// by write_timeout, a reset) for the access log.
func (w *logWriter) noteWriteError(err error) {
	if err != nil && w.err == nil && !errors.Is(err, http.ErrBodyNotAllowed) {
		w.err = fmt.Errorf("writing the answer: %w", err)
	}
}

// WriteShared passes a body the cache holds to a writer that sends it
// without a copy.
func (w *logWriter) WriteShared(p []byte) (int, error) {
	w.wrote = true
	n, err := writeShared(w.ResponseWriter, p)
	w.bytes += int64(n)
	w.noteWriteError(err)
	return n, err
}

// writeShared writes p, which stays unchanged until the answer is
// finished, without copying it when w can.
func writeShared(w http.ResponseWriter, p []byte) (int, error) {
	if sw, ok := w.(interface{ WriteShared([]byte) (int, error) }); ok {
		return sw.WriteShared(p)
	}
	return w.Write(p)
}

// ReadFrom keeps sendfile for file bodies.
func (w *logWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wrote = true
	n, err := io.Copy(w.ResponseWriter, r)
	w.bytes += n
	w.noteWriteError(err)
	return n, err
}

// logRequest writes one access-log line per request, its level from the status.
func (s *server) logRequest(r *http.Request, w *logWriter, start time.Time, m *routeMatch, res *result) {
	end := s.now()
	took := end.Sub(start)
	level := slog.LevelInfo
	switch {
	case w.status >= 500:
		level = slog.LevelError
	case w.status >= 400 && w.status != http.StatusNotFound:
		level = slog.LevelWarn
	}
	var buf [8]slog.Attr
	attrs := append(buf[:0],
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", w.status),
		slog.Int64("bytes", w.bytes),
		slog.Duration("duration", took))
	if m != nil {
		attrs = append(attrs, slog.String("route", m.action.key))
	}
	if res != nil {
		attrs = append(attrs, slog.String("cache", res.cache))
	}
	if node := originNode(r.Context()); node != "" {
		attrs = append(attrs, slog.String("origin", node))
	}
	if w.err != nil {
		attrs = append(attrs, slog.String("err", w.err.Error()))
	}
	// The handler is called directly: Logger would record the caller's
	// program counter, which the access log does not show.
	if h := s.log.Handler(); h.Enabled(r.Context(), level) {
		rec := slog.NewRecord(end, level, "request", 0)
		rec.AddAttrs(attrs...)
		h.Handle(r.Context(), rec)
	}
	s.metrics.request(m, w.status, cacheOutcome(res), took)
}
