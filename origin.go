// origin.go is the only code that talks to upstream servers: it locates which
// cluster of an origin holds a file and fetches it from one of its nodes.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by Origin.Fetch, wrapped with the node and the reason. The
// handler maps them to statuses with errors.Is.
var (
	// errNotFound: every cluster said 404 or 410, or the local file is missing (404).
	errNotFound = errors.New("not found at origin")
	// errOriginFailed: 5xx, refused or reset connection, truncated body, bad gzip (502).
	errOriginFailed = errors.New("origin failed")
	// errOriginTimeout: the probe or fetch deadline passed (504).
	errOriginTimeout = errors.New("origin timed out")
	// errTooLarge: the body is over max_source_bytes (502).
	errTooLarge = errors.New("origin body too large")
	// errBadOriginPath: the caller passed a path that is not absolute and clean (500).
	errBadOriginPath = errors.New("bad origin path")
)

// Defaults for the zero values of originOptions.
const (
	defaultProbeTimeout    = time.Second
	defaultFetchTimeout    = 3 * time.Second
	defaultChunkSize       = 32 << 10
	defaultNodeBackoff     = 2 * time.Second
	defaultNodeBackoffMax  = time.Minute
	defaultLocationTTL     = 10 * time.Minute
	defaultNegativeTTL     = 5 * time.Second
	defaultLocationEntries = 10000

	// probesPerCluster is how many nodes of a cluster are probed at once, and
	// how many a GET tries before giving up, as in the original.
	probesPerCluster = 3
	// maxRedirects bounds the redirects followed within a cluster.
	maxRedirects = 5
)

// originOptions are the settings an Origin needs; the caller fills them from
// Config. A zero duration or size means the default given in its comment.
type originOptions struct {
	ProbeTimeout time.Duration // origin_timeout: bound of the HEAD fan-out; 0 = 1s
	FetchTimeout time.Duration // origin_fetch_timeout: bound of one GET, body included; 0 = 3s
	MaxBodyBytes int64         // max_source_bytes; 0 means no limit
	Proxy        string        // proxy key: "host:port" or "http://host:port"; "" = none
	UserAgent    string        // e.g. "Katana/2.0.0"; "" sends Go's default
	Logger       *slog.Logger  // nil discards logs
	// Observe, when set, is called after every probe and fetch to a node,
	// from the goroutine that made it; it must be quick and concurrency safe.
	Observe func(ctx context.Context, ev originEvent)

	ChunkSize       int           // chunk_size: read buffer for bodies; 0 = 32 KiB
	NodeBackoff     time.Duration // first back-off of a node that failed; 0 = 2s
	NodeBackoffMax  time.Duration // longest back-off; 0 = 1m
	LocationTTL     time.Duration // how long a found location is trusted; 0 = 10m
	NegativeTTL     time.Duration // how long "not found anywhere" is trusted; 0 = 5s
	LocationEntries int           // bound of remembered locations; 0 = 10000

	// tlsRoots replaces the system roots for https nodes; tests only.
	tlsRoots *x509.CertPool
}

// withDefaults returns opt with every zero setting replaced by its default.
func (opt originOptions) withDefaults() originOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opt.ProbeTimeout, defaultProbeTimeout)
	def(&opt.FetchTimeout, defaultFetchTimeout)
	def(&opt.NodeBackoff, defaultNodeBackoff)
	def(&opt.NodeBackoffMax, defaultNodeBackoffMax)
	def(&opt.LocationTTL, defaultLocationTTL)
	def(&opt.NegativeTTL, defaultNegativeTTL)
	if opt.ChunkSize <= 0 {
		opt.ChunkSize = defaultChunkSize
	}
	if opt.LocationEntries <= 0 {
		opt.LocationEntries = defaultLocationEntries
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return opt
}

// validators are what the cache holds of a stored entry, for conditional
// requests. Empty strings mean "not known"; the zero value asks for the file
// unconditionally.
type validators struct{ ETag, LastModified string }

// originResponse describes what the origin answered.
type originResponse struct {
	Status  int         // http.StatusOK (body written to the sink) or http.StatusNotModified
	Header  http.Header // the origin's response headers (of the GET, or of the 304)
	Node    string      // node that answered, for logs
	Cluster string      // cluster that answered
	Size    int64       // bytes written to the sink
}

// fetchSink receives a body; Fetch truncates and rewinds it to retry on
// another node. A sink that also implements io.ReaderAt (an *os.File does)
// lets concurrent Fetch calls for the same file share one GET.
type fetchSink interface {
	io.Writer
	Truncate(size int64) error
	Seek(offset int64, whence int) (int64, error)
}

// Origin fetches files from the clusters of one configured origin. It is
// safe for concurrent use. Clusters are shards holding different files;
// the nodes of a cluster are replicas holding the same files:
//
//	[origins.media.filer-01]            origin "media"
//	ips = ["10.0.1.{1..3}"]             ├─ cluster filer-01: 10.0.1.1 10.0.1.2 10.0.1.3
//	[origins.media.filer-02]            └─ cluster filer-02: https://f2.example.test
//	ips = ["https://f2.example.test"]
//	headers = { Host = "img.example.test" }
//
// To fetch /a.jpg, Origin sends HEAD /a.jpg to up to 3 random nodes of
// every cluster at once; the first 200 names the cluster, and the GET goes
// to that node, or to its siblings when it fails. The location is then
// remembered, so the next fetch of /a.jpg is a single (conditional) GET.
type Origin struct {
	name     string
	clusters []*cluster // sorted by name
	opt      originOptions
	log      *slog.Logger
	single   *cluster // the only cluster when the origin has one node; else nil

	memo       *locationMemo
	flights    fetchGroup
	transports []*http.Transport // closed by Close
	now        func() time.Time  // the clock; tests replace it
	bufs       sync.Pool         // *[]byte of ChunkSize, for copying bodies
	stats      originStats
}

// cluster is one shard of an origin. Its fields are read-only once built.
type cluster struct {
	name   string
	nodes  []*node
	header http.Header // sent on every request, except Host
	host   string      // the Host header to send; "" means the node's own
	client *http.Client
}

// originStats counts what an Origin does; read the fields atomically.
type originStats struct {
	Probes, Gets, MemoHits, Coalesced atomic.Int64
}

// newOrigin builds the Origin called name from its clusters. Every bad node,
// header or option is reported at once (errors.Join), each naming the origin,
// the cluster and the node.
func newOrigin(name string, clusters map[string]*ClusterConfig,
	opt originOptions) (*Origin, error) {
	opt = opt.withDefaults()
	o := &Origin{name: name, opt: opt, log: opt.Logger, now: time.Now}
	o.memo = newLocationMemo(opt.LocationEntries)
	o.bufs.New = func() any { b := make([]byte, opt.ChunkSize); return &b }

	var errs []error
	proxy, err := parseProxy(opt.Proxy)
	if err != nil {
		errs = append(errs, fmt.Errorf("origin %q: %w", name, err))
	}
	if len(clusters) == 0 {
		errs = append(errs, fmt.Errorf("origin %q: no clusters", name))
	}
	shared := o.newTransport(proxy, "")
	for _, cname := range slices.Sorted(maps.Keys(clusters)) {
		c, cerrs := o.newCluster(cname, clusters[cname], proxy, shared)
		errs = append(errs, cerrs...)
		if c != nil {
			o.clusters = append(o.clusters, c)
		}
	}
	if err := errors.Join(errs...); err != nil {
		o.Close()
		return nil, err
	}
	if len(o.clusters) == 1 && len(o.clusters[0].nodes) == 1 {
		o.single = o.clusters[0]
	}
	return o, nil
}

// newCluster parses one cluster; it returns nil and the errors when any
// node or header is bad.
func (o *Origin) newCluster(name string, cc *ClusterConfig, proxy *url.URL,
	shared *http.Transport) (*cluster, []error) {
	where := fmt.Sprintf("origin %q cluster %q", o.name, name)
	if cc == nil || len(cc.IPs) == 0 {
		return nil, []error{fmt.Errorf("%s: ips is empty", where)}
	}
	c := &cluster{name: name, header: http.Header{}}
	errs := c.parseHeaders(where, cc.Headers)
	seen := map[string]bool{}
	for _, ip := range cc.IPs {
		names, err := expandRanges(ip)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s node %q: %w", where, ip, err))
			continue
		}
		for _, s := range names {
			n, err := parseNode(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s node %q: %w", where, s, err))
				continue
			}
			if seen[s] {
				errs = append(errs, fmt.Errorf("%s node %q: listed twice", where, s))
			}
			seen[s] = true
			c.nodes = append(c.nodes, n)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	c.client = o.newClient(c, proxy, shared)
	return c, nil
}

// parseHeaders checks the cluster's headers and keeps them; Host goes to
// c.host because Go sends it from Request.Host.
func (c *cluster) parseHeaders(where string, h map[string]string) []error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(h)) {
		v := h[k]
		switch {
		case k == "" || strings.ContainsAny(k, " \t\r\n:()<>@,;\\\"/[]?={}"):
			errs = append(errs, fmt.Errorf("%s header %q: bad name", where, k))
		case strings.ContainsAny(v, "\r\n\x00"):
			errs = append(errs, fmt.Errorf("%s header %q: value has a line break", where, k))
		case http.CanonicalHeaderKey(k) == "Host":
			c.host = v
		default:
			c.header.Set(k, v)
		}
	}
	return errs
}

// newClient returns the HTTP client of c. A cluster with a Host header and
// an https node gets its own transport whose TLS ServerName (SNI and the name
// the certificate must match) is that host; other clusters share one.
func (o *Origin) newClient(c *cluster, proxy *url.URL, shared *http.Transport) *http.Client {
	t := shared
	if c.host != "" && slices.ContainsFunc(c.nodes, func(n *node) bool {
		return n.base != nil && n.base.Scheme == "https"
	}) {
		t = o.newTransport(proxy, hostWithoutPort(c.host))
	}
	return &http.Client{Transport: t, CheckRedirect: c.checkRedirect}
}

// checkRedirect follows a redirect only to a node of the same cluster, so an
// origin cannot send Katana to an arbitrary host; any other redirect stops
// and its 3xx answer counts as "not here" for that node (RFC 9110 15.4). The
// cluster's Host header goes along, also on absolute redirects.
func (c *cluster) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return http.ErrUseLastResponse
	}
	for _, n := range c.nodes {
		if n.base != nil && n.base.Scheme == req.URL.Scheme && n.base.Host == req.URL.Host {
			if c.host != "" {
				req.Host = c.host
			}
			return nil
		}
	}
	return http.ErrUseLastResponse
}

// newTransport returns a transport using proxy (nil: none; the environment's
// proxy variables are ignored) and, if serverName is set, that TLS name.
func (o *Origin) newTransport(proxy *url.URL, serverName string) *http.Transport {
	t := &http.Transport{
		DialContext:         (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // gzip is decoded by readBody, whatever asked for it
		ForceAttemptHTTP2:   true,
		// Answers' headers are stored with cached files and sent to every
		// client: an origin may not make them huge (the same bound as
		// requests to Katana).
		MaxResponseHeaderBytes: 64 << 10,
		TLSClientConfig: &tls.Config{
			ServerName: serverName,
			RootCAs:    o.opt.tlsRoots, // nil: the system roots
		},
	}
	if proxy != nil {
		t.Proxy = http.ProxyURL(proxy)
	}
	o.transports = append(o.transports, t)
	return t
}

// parseProxy reads the proxy key: "" (none), "host:port", or a URL with
// scheme http, https or socks5.
func parseProxy(s string) (*url.URL, error) {
	if s == "" {
		return nil, nil
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("proxy %q: %w", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5":
		return nil, fmt.Errorf("proxy %q: scheme must be http, https or socks5", s)
	case u.Hostname() == "":
		return nil, fmt.Errorf("proxy %q: no host", s)
	}
	return u, nil
}

// Close releases idle connections. Fetch calls in progress finish normally;
// an Origin has no background goroutines, so nothing else needs stopping.
func (o *Origin) Close() {
	for _, t := range o.transports {
		t.CloseIdleConnections()
	}
}

// Fetch gets path from the origin into sink. With validators it asks
// conditionally and may answer 304 without touching the sink. Concurrent
// calls with the same path and validators share one probe round and, when
// the first caller's sink is an io.ReaderAt, one GET. path is decoded,
// starts with "/" and has no ".." segment.
func (o *Origin) Fetch(ctx context.Context, path string, v validators,
	sink fetchSink) (*originResponse, error) {
	if !cleanOriginPath(path) {
		return nil, fmt.Errorf("origin %q: path %q: %w", o.name, path, errBadOriginPath)
	}
	return o.flights.do(ctx, o, path, v, sink)
}

// fetch is one uncoalesced Fetch: remembered location, else probe, then GET.
// The node that served the GET is remembered, so a node that failed the GET
// after winning the probe is not asked first next time.
func (o *Origin) fetch(ctx context.Context, path string, v validators,
	sink fetchSink) (*originResponse, error) {
	if loc, ok := o.memo.get(path, o.now()); ok {
		o.stats.MemoHits.Add(1)
		if !loc.found {
			return nil, fmt.Errorf("origin %q: %s: %w (remembered)", o.name, path, errNotFound)
		}
		resp, n, err := o.get(ctx, loc.c, loc.n, path, v, sink)
		if !errors.Is(err, errNotFound) {
			o.remember(path, loc.c, n, err)
			return resp, err
		}
		o.memo.forget(path) // it moved: locate it again
	}

	// With one node in all there is nothing to locate: a conditional GET
	// answers in one round trip what HEAD then GET would answer in two.
	if c := o.single; c != nil {
		resp, n, err := o.get(ctx, c, c.nodes[0], path, v, sink)
		o.remember(path, c, n, err)
		return resp, err
	}

	win, err := o.probe(ctx, path, v)
	if err != nil {
		o.remember(path, nil, nil, err)
		return nil, err
	}
	if win.status == http.StatusNotModified {
		o.remember(path, win.c, win.n, nil)
		return &originResponse{Status: win.status, Header: win.header,
			Node: win.n.name, Cluster: win.c.name}, nil
	}
	resp, n, err := o.get(ctx, win.c, win.n, path, validators{}, sink)
	o.remember(path, win.c, n, err)
	return resp, err
}

// remember stores where path lives after an answer: found on node n of c,
// or not found anywhere. Failures are not remembered.
func (o *Origin) remember(path string, c *cluster, n *node, err error) {
	now := o.now()
	switch {
	case err == nil:
		o.memo.put(pathLocation{path: path, c: c, n: n, found: true,
			expires: now.Add(o.opt.LocationTTL)})
	case errors.Is(err, errNotFound):
		o.memo.put(pathLocation{path: path, expires: now.Add(o.opt.NegativeTTL)})
	}
}

// cleanOriginPath reports whether p is absolute, has no ".." segment and
// no NUL byte.
func cleanOriginPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return false
		}
	}
	return true
}

// hostWithoutPort returns the host part of a Host header value.
func hostWithoutPort(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return strings.Trim(h, "[]")
}
