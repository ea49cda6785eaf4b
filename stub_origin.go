// stub_origin.go is a stand-in for origin.go while it is being written.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

var (
	errNotFound      = errors.New("not found on origin")
	errOriginFailed  = errors.New("origin failed")
	errOriginTimeout = errors.New("origin timed out")
	errTooLarge      = errors.New("origin body too large")
)

type originOptions struct {
	ProbeTimeout time.Duration
	FetchTimeout time.Duration
	MaxBodyBytes int64
	Proxy        string
	UserAgent    string
	Logger       *slog.Logger
}

type validators struct{ ETag, LastModified string }

type originResponse struct {
	Status  int
	Header  http.Header
	Node    string
	Cluster string
	Size    int64
}

type fetchSink interface {
	io.Writer
	Truncate(size int64) error
	Seek(offset int64, whence int) (int64, error)
}

type Origin struct {
	node    string
	headers map[string]string
	opt     originOptions
}

func newOrigin(name string, clusters map[string]*ClusterConfig, opt originOptions) (*Origin, error) {
	for _, c := range clusters {
		return &Origin{node: c.IPs[0], headers: c.Headers, opt: opt}, nil
	}
	return nil, fmt.Errorf("origin %s: no cluster", name)
}

func (o *Origin) Close() {}

func (o *Origin) Fetch(ctx context.Context, p string, v validators, sink fetchSink) (*originResponse, error) {
	if strings.HasPrefix(o.node, "/") || strings.HasPrefix(o.node, ".") {
		f, err := os.Open(filepath.Join(o.node, filepath.FromSlash(p)))
		if err != nil {
			return nil, errNotFound
		}
		defer f.Close()
		n, err := io.Copy(sink, f)
		return &originResponse{Status: 200, Header: http.Header{}, Size: n}, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.opt.FetchTimeout)
	defer cancel()
	u := o.node
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", u+p, nil)
	for k, val := range o.headers {
		if strings.EqualFold(k, "host") {
			req.Host = val
		} else {
			req.Header.Set(k, val)
		}
	}
	if v.ETag != "" {
		req.Header.Set("If-None-Match", v.ETag)
	} else if v.LastModified != "" {
		req.Header.Set("If-Modified-Since", v.LastModified)
	}
	req.Header.Set("User-Agent", o.opt.UserAgent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", errOriginTimeout, err)
		}
		return nil, fmt.Errorf("%w: %w", errOriginFailed, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == 304:
		return &originResponse{Status: 304, Header: resp.Header}, nil
	case resp.StatusCode == 404 || resp.StatusCode == 410:
		return nil, errNotFound
	case resp.StatusCode != 200:
		return nil, fmt.Errorf("%w: status %d", errOriginFailed, resp.StatusCode)
	}
	n, err := io.Copy(sink, resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errOriginFailed, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return nil, fmt.Errorf("%w: truncated", errOriginFailed)
	}
	return &originResponse{Status: 200, Header: resp.Header, Size: n}, nil
}

// Do sends a request as it is to the origin's first node.
func (o *Origin) Do(ctx context.Context, method, p, rawQuery string, h http.Header, body io.Reader) (*http.Response, error) {
	u := o.node
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	u += p
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errOriginFailed, err)
	}
	req.Header = h.Clone()
	for k, val := range o.headers {
		if strings.EqualFold(k, "host") {
			req.Host = val
		} else {
			req.Header.Set(k, val)
		}
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", o.opt.UserAgent)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", errOriginTimeout, err)
		}
		return nil, fmt.Errorf("%w: %w", errOriginFailed, err)
	}
	return resp, nil
}
