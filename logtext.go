// logtext.go writes text log lines as slog's TextHandler does, faster for the
// records of plain values that the access log is made of.
package main

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// textHandler is a slog.Handler whose output is the same as slog's
// TextHandler with default options. Records whose values are all strings,
// numbers, booleans, durations or times, outside any group, it formats
// itself: the access log writes one per request, and TextHandler's generic
// path costs about as much as the rest of a cache hit. Every other record
// goes to a TextHandler on the same writer. It is safe for concurrent use
// when w is.
type textHandler struct {
	w     io.Writer
	level slog.Leveler
	std   slog.Handler // the fallback, with the same attributes and groups
	pre   []byte       // attributes from WithAttrs, formatted; nil with any group
	plain bool         // no group and every WithAttrs value was plain
}

func newTextHandler(w io.Writer, level slog.Leveler) *textHandler {
	return &textHandler{w: w, level: level, plain: true,
		std: slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})}
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *textHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.std = h.std.WithAttrs(as)
	if c.plain {
		c.pre = append([]byte(nil), h.pre...)
		for _, a := range as {
			if !plainAttr(a) {
				c.plain = false
				break
			}
			c.pre = appendTextAttr(c.pre, a)
		}
	}
	return &c
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.std = h.std.WithGroup(name)
	if name != "" {
		c.plain = false
	}
	return &c
}

// textBufs holds line buffers for reuse.
var textBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (h *textHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.plain {
		return h.std.Handle(ctx, r)
	}
	bp := textBufs.Get().(*[]byte)
	b := (*bp)[:0]
	if !r.Time.IsZero() {
		b = append(b, "time="...)
		b = appendTextTime(b, r.Time)
		b = append(b, ' ')
	}
	b = append(b, "level="...)
	b = appendTextString(b, r.Level.String())
	b = append(b, " msg="...)
	b = appendTextString(b, r.Message)
	b = append(b, h.pre...)
	plain := true
	r.Attrs(func(a slog.Attr) bool {
		if plain = plainAttr(a); plain {
			b = appendTextAttr(b, a)
		}
		return plain
	})
	var err error
	if plain {
		_, err = h.w.Write(append(b, '\n'))
	} else {
		err = h.std.Handle(ctx, r) // the line made so far is dropped
	}
	*bp = b[:0]
	textBufs.Put(bp)
	return err
}

// plainAttr reports whether a is one that appendTextAttr formats: a key and
// a value of a kind whose text form needs no reflection.
func plainAttr(a slog.Attr) bool {
	if a.Key == "" {
		return false // TextHandler drops it, or inlines a group
	}
	switch a.Value.Kind() {
	case slog.KindString, slog.KindInt64, slog.KindUint64, slog.KindFloat64,
		slog.KindBool, slog.KindDuration, slog.KindTime:
		return true
	}
	return false
}

func appendTextAttr(b []byte, a slog.Attr) []byte {
	b = append(b, ' ')
	b = appendTextString(b, a.Key)
	b = append(b, '=')
	v := a.Value
	switch v.Kind() {
	case slog.KindString:
		return appendTextString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		return strconv.AppendFloat(b, v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return append(b, v.Duration().String()...) // unquoted, as TextHandler writes it
	case slog.KindTime:
		return appendTextTime(b, v.Time())
	}
	return appendTextString(b, v.String())
}

// textTimeLayout is how TextHandler writes times: RFC 3339 with milliseconds.
const textTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// textSecond is the text of a second of times in one location, around
// the milliseconds.
type textSecond struct {
	sec          int64
	loc          *time.Location
	prefix, zone string
}

// lastTextSecond is the second appendTextTime formatted last.
var lastTextSecond atomic.Pointer[textSecond]

// appendTextTime appends t as TextHandler does, formatting each second of
// a location once.
func appendTextTime(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		return t.AppendFormat(b, textTimeLayout)
	}
	ts := lastTextSecond.Load()
	if ts == nil || ts.sec != t.Unix() || ts.loc != t.Location() {
		full := t.Format(textTimeLayout)
		ts = &textSecond{sec: t.Unix(), loc: t.Location(), prefix: full[:19], zone: full[23:]}
		lastTextSecond.Store(ts)
	}
	ms := t.Nanosecond() / 1e6
	b = append(b, ts.prefix...)
	b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	return append(b, ts.zone...)
}

// appendTextString appends s, quoted when TextHandler would quote it.
func appendTextString(b []byte, s string) []byte {
	if needsTextQuote(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// needsTextQuote reports whether TextHandler quotes s: when it is empty or
// holds a space, '=', '"', a control character (not DEL) or a rune that is not a
// printable one.
func needsTextQuote(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '=' || c == '"' {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}
