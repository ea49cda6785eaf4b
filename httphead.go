// httphead.go parses the request heads that the HTTP/1.1 loop answers
// itself, and says which go to net/http.
package main

import (
	"bytes"
	"context"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// headEnd returns the length of the request head in buf, or -1 when buf
// does not hold a whole head yet. A head ends at an empty line.
func headEnd(buf []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if bytes.HasPrefix(buf[i:], []byte("\r\n")) {
			return i + 2
		}
		if bytes.HasPrefix(buf[i:], []byte("\n")) {
			return i + 1
		}
	}
}

// parseHead reads a request head, taking only what the loop serves:
// RFC 9112 request lines for GET and HEAD in origin form over HTTP/1.1,
// header lines ending in CRLF, one valid Host, no body and no upgrade. The
// strings of the request share one copy of the head.
func (lc *loopConn) parseHead(b []byte) (*http.Request, error) {
	head := string(b)
	line, rest, _ := strings.Cut(head, "\r\n")
	method, target, ok := splitRequestLine(line)
	if !ok || !plainTarget(target) {
		return nil, errHandoff
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, errHandoff
	}
	h, host, closeAfter, err := parseHeader(rest)
	if err != nil {
		return nil, err
	}
	r := &http.Request{Method: method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, Host: host, RemoteAddr: lc.remote,
		RequestURI: target, Close: closeAfter}
	// As with net/http, the context ends with the connection or when
	// ServeHTTP returns.
	ctx, end := context.WithCancel(traceContext(lc.ctx))
	lc.endReq = end
	return r.WithContext(ctx), nil
}

// splitRequestLine splits a GET or HEAD request line of HTTP/1.1.
func splitRequestLine(line string) (method, target string, ok bool) {
	switch {
	case strings.HasPrefix(line, "GET "):
		method, line = http.MethodGet, line[4:]
	case strings.HasPrefix(line, "HEAD "):
		method, line = http.MethodHead, line[5:]
	default:
		return "", "", false
	}
	target, ok = strings.CutSuffix(line, " HTTP/1.1")
	return method, target, ok
}

// plainTarget reports whether t is an origin-form target of visible ASCII.
func plainTarget(t string) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f || t[i] == '#' {
			return false
		}
	}
	return true
}

// parseHeader reads the header lines of a plain request (each ending in
// CRLF, the head's empty line last). Fields that bring a body, an upgrade
// or anything net/http would refuse are errHandoff.
func parseHeader(lines string) (h http.Header, host string, closeAfter bool, err error) {
	h = make(http.Header, strings.Count(lines, "\n"))
	hosts := 0
	for len(lines) > 0 {
		var line string
		var ok bool
		if line, lines, ok = strings.Cut(lines, "\r\n"); !ok {
			return nil, "", false, errHandoff // a bare LF
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !validFieldName(name) || !validFieldValue(value) {
			return nil, "", false, errHandoff
		}
		key := canonicalKey(name)
		v := strings.Trim(value, " \t")
		switch key {
		case "Host":
			hosts++
			host = v
			continue // net/http keeps it in Request.Host only
		case "Content-Length":
			if v != "0" || len(h[key]) > 0 {
				return nil, "", false, errHandoff // a body, or two lengths
			}
		case "Transfer-Encoding", "Expect", "Upgrade":
			return nil, "", false, errHandoff
		case "Connection":
			for tok := range strings.SplitSeq(v, ",") {
				switch strings.ToLower(strings.Trim(tok, " \t")) {
				case "close":
					closeAfter = true
				case "upgrade":
					return nil, "", false, errHandoff
				}
			}
		}
		h[key] = append(h[key], v)
	}
	if hosts != 1 || !validHost(host) {
		return nil, "", false, errHandoff // net/http answers 400
	}
	return h, host, closeAfter, nil
}

// commonKeys are the canonical forms of the fields clients send most.
var commonKeys = []string{"Host", "User-Agent", "Accept", "Accept-Encoding",
	"Accept-Language", "Connection", "Cache-Control", "If-None-Match",
	"If-Modified-Since", "Referer", "Cookie", "Pragma", "Via", "X-Forwarded-For",
	"Content-Length", "Range"}

// canonicalKey returns the canonical form of a field name, without a copy
// for the common ones.
func canonicalKey(name string) string {
	for _, k := range commonKeys {
		if len(k) == len(name) && strings.EqualFold(k, name) {
			return k
		}
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

// validFieldName reports whether b is a token (RFC 9110 section 5.1).
func validFieldName(b string) bool {
	if len(b) == 0 {
		return false
	}
	for i := range len(b) {
		if !tokenBytes[b[i]] {
			return false
		}
	}
	return true
}

var tokenBytes, hostBytes = byteSet("!#$%&'*+-.^_`|~"), byteSet("-._~:[]!$&'()*+,;=%")

// byteSet returns the letters, the digits and extra as a lookup table.
func byteSet(extra string) (set [256]bool) {
	for c := range 256 {
		set[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	for i := range len(extra) {
		set[extra[i]] = true
	}
	return set
}

// validFieldValue reports whether b holds no control bytes but tab
// (RFC 9110 section 5.5).
func validFieldValue(b string) bool {
	for i := range len(b) {
		if c := b[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost accepts the characters of a host and port (RFC 3986 section
// 3.2.2) and an empty value; anything else goes to net/http.
func validHost(h string) bool {
	for i := range len(h) {
		if !hostBytes[h[i]] {
			return false
		}
	}
	return true
}
