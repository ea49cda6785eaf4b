// metrics.go defines the Prometheus collectors that the admin listener serves.
package main

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// latencyBuckets span a local disk hit (0.5 ms) to a slow origin (10 s).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// metrics holds the collectors of one process, in a registry of its own so
// that tests can build several. It outlives reloads: each new server gets
// the same one. A nil *metrics records nothing, so servers built without
// one (tests, --check) need no checks. Its methods are safe for concurrent
// use.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec   // by route, action, status
	durations *prometheus.HistogramVec // request latency by action
	cache     *prometheus.CounterVec   // answers by cache outcome
	probes    *prometheus.HistogramVec // origin HEAD probes by origin, cluster
	fetches   *prometheus.HistogramVec // origin GETs and forwards by origin, cluster
	failures  *prometheus.CounterVec   // origin requests that failed, by origin, cluster
	images    *prometheus.HistogramVec // image work by stage and format
	jobs      prometheus.Gauge         // image jobs running now
	reserved  prometheus.Gauge         // bytes of memory those jobs reserved
	reloads   *prometheus.CounterVec   // config reloads by result

	// The series of requests looked up once: a lookup by label values
	// hashes them, which costs a cache hit more than the count itself.
	requestSeries sync.Map // requestKey -> *requestSeries
}

type requestKey struct {
	route, action string
	status        int
	cache         string
}

type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
	cache    prometheus.Counter // nil without a cache outcome
}

// newMetrics registers every collector. cleaner returns the running
// cleaner, or nil; the cache series read it at scrape time.
func newMetrics(cleaner func() *Cleaner) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "katana_requests_total",
		Help: "Requests answered, by route, action (resize, proxy, none) and status.",
	}, []string{"route", "action", "status"})
	m.durations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "katana_request_duration_seconds", Help: "Time to answer a request, by action.",
		Buckets: latencyBuckets,
	}, []string{"action"})
	m.cache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "katana_cache_requests_total",
		Help: "Answers by cache outcome: hit, miss, coalesced, stale, revalidated, pass, placeholder.",
	}, []string{"cache"})
	m.probes = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "katana_origin_probe_seconds", Help: "HEAD probes to origin nodes.",
		Buckets: latencyBuckets,
	}, []string{"origin", "cluster"})
	m.fetches = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "katana_origin_fetch_seconds", Help: "Requests to origin nodes, body included.",
		Buckets: latencyBuckets,
	}, []string{"origin", "cluster"})
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "katana_origin_failures_total", Help: "Origin probes and fetches that failed.",
	}, []string{"origin", "cluster", "kind"})
	m.images = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "katana_image_seconds",
		Help:    "Image work by stage (transform is the whole job) and output format.",
		Buckets: latencyBuckets,
	}, []string{"stage", "format"})
	m.jobs = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "katana_image_jobs_in_flight", Help: "Image jobs holding a work slot now.",
	})
	m.reserved = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "katana_image_memory_reserved_bytes",
		Help: "Memory the running image jobs reserved within max_memory.",
	})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "katana_config_reloads_total", Help: "SIGHUP reloads by result (ok, error).",
	}, []string{"result"})
	m.reg.MustRegister(m.requests, m.durations, m.cache, m.probes, m.fetches, m.failures,
		m.images, m.jobs, m.reserved, m.reloads,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registerCleaner(cleaner)
	return m
}

// registerCleaner adds the series read from Cleaner.Stats at scrape time.
// A reload starts a new cleaner, so its counters start again from zero,
// which Prometheus reads as a counter reset.
func (m *metrics) registerCleaner(cleaner func() *Cleaner) {
	stat := func(f func(cleanerStats) float64) func() float64 {
		return func() float64 {
			if c := cleaner(); c != nil {
				return f(c.Stats())
			}
			return 0
		}
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "katana_cache_bytes",
			Help: "Bytes of the cached files the cleaner knows, sidecars included."},
			stat(func(s cleanerStats) float64 { return float64(s.Bytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "katana_cache_entries",
			Help: "Cached files the cleaner knows."},
			stat(func(s cleanerStats) float64 { return float64(s.Entries) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "katana_cache_usage_percent",
			Help: "Block or inode usage of the cache filesystem at the last check."},
			stat(func(s cleanerStats) float64 { return s.Usage })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "katana_cleaner_evictions_total",
			Help: "Files the cleaner deleted to free space."},
			stat(func(s cleanerStats) float64 { return float64(s.Evictions) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "katana_cleaner_evicted_bytes_total", Help: "Bytes the cleaner deleted."},
			stat(func(s cleanerStats) float64 { return float64(s.EvictedBytes) })),
	)
}

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// request counts one answered request. m is nil when no route matched.
func (m *metrics) request(rm *routeMatch, status int, cache string, d time.Duration) {
	if m == nil {
		return
	}
	k := requestKey{route: "none", action: "none", status: status, cache: cache}
	if rm != nil {
		k.route, k.action = rm.action.key, rm.action.kind.String()
	}
	v, ok := m.requestSeries.Load(k)
	if !ok {
		rs := &requestSeries{
			count:    m.requests.WithLabelValues(k.route, k.action, strconv.Itoa(status)),
			duration: m.durations.WithLabelValues(k.action),
		}
		if cache != "" {
			rs.cache = m.cache.WithLabelValues(cache)
		}
		v, _ = m.requestSeries.LoadOrStore(k, rs)
	}
	rs := v.(*requestSeries)
	rs.count.Inc()
	rs.duration.Observe(d.Seconds())
	if rs.cache != nil {
		rs.cache.Inc()
	}
}

// origin records one probe or fetch to an origin node.
func (m *metrics) origin(ev originEvent) {
	if m == nil {
		return
	}
	h := m.fetches
	if ev.Kind == "probe" {
		h = m.probes
	}
	h.WithLabelValues(ev.Origin, ev.Cluster).Observe(ev.Duration.Seconds())
	// A file the origin does not have is an answer, not a failure.
	if ev.Err != nil && !errors.Is(ev.Err, errNotFound) {
		m.failures.WithLabelValues(ev.Origin, ev.Cluster, ev.Kind).Inc()
	}
}

// imageJob counts a job that holds a work slot; done ends it and records
// its latency under stage "transform".
func (m *metrics) imageJob(format string, reserved int64) (done func()) {
	if m == nil {
		return func() {}
	}
	start := time.Now()
	m.jobs.Inc()
	m.reserved.Add(float64(reserved))
	return func() {
		m.jobs.Dec()
		m.reserved.Sub(float64(reserved))
		m.images.WithLabelValues("transform", format).Observe(time.Since(start).Seconds())
	}
}

// imageStage records one step of an image job (decode, resize, encode).
func (m *metrics) imageStage(stage, format string, took time.Duration) {
	if m != nil {
		m.images.WithLabelValues(stage, format).Observe(took.Seconds())
	}
}

// reload counts a config reload.
func (m *metrics) reload(err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.reloads.WithLabelValues(result).Inc()
}

// cacheOutcome is the cache label of an answer; "" when it had none.
func cacheOutcome(res *result) string {
	if res == nil {
		return ""
	}
	return res.cache
}
