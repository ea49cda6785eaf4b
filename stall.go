// stall.go enforces write_timeout per write: a client may download slowly
// for as long as it keeps accepting bytes, but not stall an answer.
package main

import (
	"io"
	"net"
	"time"
)

// stallChunk is the most written under one deadline. With the default
// write_timeout of 60 s a client must take 256 KiB a minute (about 4 KiB/s)
// to keep a download going.
const stallChunk = 256 << 10

// stallListener wraps accepted connections so that no chunk of a write may
// take longer than timeout. A zero timeout returns ln as it is.
func stallListener(ln net.Listener, timeout time.Duration) net.Listener {
	if timeout <= 0 {
		return ln
	}
	return &stallLn{Listener: ln, timeout: timeout}
}

type stallLn struct {
	net.Listener
	timeout time.Duration
}

func (l *stallLn) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &stallConn{Conn: c, timeout: l.timeout}, nil
}

// stallConn sets a fresh write deadline before every chunk it writes.
type stallConn struct {
	net.Conn
	timeout time.Duration
}

func (c *stallConn) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
		k, err := c.Conn.Write(b[:min(len(b), stallChunk)])
		n += k
		if err != nil {
			return n, err
		}
		b = b[k:]
	}
	return n, nil
}

// ReadFrom keeps sendfile for file bodies: each chunk goes through the TCP
// connection's own ReadFrom with its own deadline, as an *io.LimitedReader
// over the file itself, the shape sendfile recognises.
func (c *stallConn) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.Conn.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{c}, r)
	}
	outer, limited := r.(*io.LimitedReader)
	if limited {
		r = outer.R
	}
	var total int64
	for {
		chunk := &io.LimitedReader{R: r, N: stallChunk}
		if limited {
			if outer.N <= 0 {
				return total, nil
			}
			chunk.N = min(outer.N, stallChunk)
		}
		want := chunk.N
		c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
		n, err := rf.ReadFrom(chunk)
		total += n
		if limited {
			outer.N -= n
		}
		if err != nil || n < want {
			return total, err
		}
	}
}

// CloseWrite lets net/http half-close the connection after an error, as
// it does with a bare TCP connection, so the client reads the answer
// before the connection goes.
func (c *stallConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// writeBuffers writes bufs in one system call when they fit in a chunk,
// under one deadline; larger ones go chunk by chunk through Write.
func (c *stallConn) writeBuffers(bufs net.Buffers) error {
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	if total > stallChunk {
		for _, b := range bufs {
			if _, err := c.Write(b); err != nil {
				return err
			}
		}
		return nil
	}
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := bufs.WriteTo(c.Conn)
	return err
}
