package main

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"testing"
	"time"
)

// textRecordCases are records whose text form both handlers must write alike.
func textRecordCases() []slog.Record {
	at := time.Date(2026, 12, 4, 13, 5, 6, 789_654_321, time.UTC)
	east := time.FixedZone("east", 5*3600+1800)
	var out []slog.Record
	add := func(t time.Time, l slog.Level, msg string, as ...slog.Attr) {
		r := slog.NewRecord(t, l, msg, 0)
		r.AddAttrs(as...)
		out = append(out, r)
	}
	add(at, slog.LevelInfo, "request",
		slog.String("method", "GET"), slog.String("path", "/img/cat.png/resize-300x200.webp"),
		slog.Int("status", 200), slog.Int64("bytes", 16630),
		slog.Duration("duration", 43210*time.Nanosecond), slog.String("cache", "hit"))
	add(at.In(east), slog.LevelWarn, "two words", slog.String("err", `say "no" = no`))
	add(time.Time{}, slog.LevelError+2, "", slog.String("", ""), slog.String("k", ""))
	add(at, slog.LevelDebug-1, "tab\there", slog.String("ctl", "a\x01b\x7f"),
		slog.String("uni", "héllo wörld"), slog.String("nbsp", "a\u00a0b"),
		slog.String("bad", "a\xffb"), slog.String("back", `c:\dir`), slog.String("sp k", "v"))
	add(at, slog.LevelInfo, "numbers", slog.Float64("f", 1.5), slog.Float64("inf", math.Inf(-1)),
		slog.Float64("nan", math.NaN()), slog.Float64("big", 1e21), slog.Uint64("u", math.MaxUint64),
		slog.Int64("neg", math.MinInt64), slog.Bool("yes", true), slog.Duration("neg", -time.Second),
		slog.Time("t", at.Add(time.Microsecond)), slog.Time("z", time.Time{}))
	add(at, slog.LevelInfo, "not plain", slog.Any("err", context.Canceled),
		slog.Group("g", slog.Int("a", 1)), slog.Any("m", map[string]int{"x": 1}))
	return out
}

func TestTextHandlerWritesWhatTextHandlerWrites(t *testing.T) {
	for _, with := range [][]slog.Attr{nil, {slog.String("logger", "katana.server")},
		{slog.Any("odd", []int{1})}} {
		for i, r := range textRecordCases() {
			var got, want bytes.Buffer
			var gh, wh slog.Handler = newTextHandler(&got, slog.LevelDebug-4),
				slog.NewTextHandler(&want, &slog.HandlerOptions{Level: slog.LevelDebug - 4})
			if with != nil {
				gh, wh = gh.WithAttrs(with), wh.WithAttrs(with)
			}
			if err := gh.Handle(context.Background(), r.Clone()); err != nil {
				t.Fatal(err)
			}
			wh.Handle(context.Background(), r.Clone())
			if got.String() != want.String() {
				t.Errorf("record %d with %v:\n got %q\nwant %q", i, with, got.String(), want.String())
			}
		}
	}
}

func TestTextHandlerGroupsGoToTextHandler(t *testing.T) {
	var got, want bytes.Buffer
	gh := newTextHandler(&got, slog.LevelInfo).WithGroup("g").WithAttrs([]slog.Attr{slog.Int("a", 1)})
	wh := slog.NewTextHandler(&want, nil).WithGroup("g").WithAttrs([]slog.Attr{slog.Int("a", 1)})
	for _, h := range []slog.Handler{gh, wh} {
		slog.New(h).Info("m", "b", 2)
	}
	if got.String() == "" || trimTime(got.String()) != trimTime(want.String()) {
		t.Errorf("got %q, want %q", got.String(), want.String())
	}
	if newTextHandler(&got, slog.LevelWarn).Enabled(context.Background(), slog.LevelInfo) {
		t.Error("Enabled(INFO) = true at level WARN")
	}
}

// trimTime drops the time= field, which two calls cannot share.
func trimTime(line string) string {
	if i := bytes.IndexByte([]byte(line), ' '); i >= 0 {
		return line[i:]
	}
	return line
}

func FuzzTextHandler(f *testing.F) {
	f.Add("request", "k", "GET /a b", int64(3), 1.5, int64(1500))
	f.Add("", "", "", int64(0), 0.0, int64(0))
	f.Add("é\x00", "a=b", "\"q\"", int64(-1), math.Inf(1), int64(-7))
	f.Fuzz(func(t *testing.T, msg, key, s string, n int64, fl float64, d int64) {
		r := slog.NewRecord(time.Unix(n, d).UTC(), slog.Level(n%13), msg, 0)
		r.AddAttrs(slog.String(key, s), slog.Int64("n", n), slog.Float64("f", fl),
			slog.Duration("d", time.Duration(d)), slog.String("s", s))
		var got, want bytes.Buffer
		newTextHandler(&got, slog.LevelDebug-20).Handle(context.Background(), r.Clone())
		slog.NewTextHandler(&want, &slog.HandlerOptions{Level: slog.LevelDebug - 20}).
			Handle(context.Background(), r.Clone())
		if got.String() != want.String() {
			t.Errorf("got %q\nwant %q", got.String(), want.String())
		}
	})
}
