// jpegdec_test.go checks jpegdec.go against image/jpeg on real files and fuzzes it.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// jpegTestFile is one input of the comparison tests.
type jpegTestFile struct {
	name string
	data []byte
}

// jpegTestFiles returns every JPEG the comparison tests use: Go's image/testdata (in place),
// the JPEG case files, the committed photo and the larger photos in ../shared/photos if present.
func jpegTestFiles(t testing.TB) []jpegTestFile {
	t.Helper()
	var paths []string
	for _, pat := range []string{
		filepath.Join(runtime.GOROOT(), "src", "image", "testdata", "*.jp*g"),
		filepath.Join("testdata", "cases", "*", "*.jpg"),
		filepath.Join("testdata", "photos", "*.jpg"),
		filepath.Join("..", "shared", "photos", "flower-2268x1512*.jpg"),
	} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, m...)
	}
	sort.Strings(paths)
	var files []jpegTestFile
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, jpegTestFile{name: filepath.Base(p), data: data})
	}
	if len(files) < 20 {
		t.Fatalf("found only %d test jpegs", len(files))
	}
	return files
}

// rgbaOf converts any image to 8-bit RGBA through its own colour model.
func rgbaOf(img image.Image) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			out.Set(x, y, color.RGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)))
		}
	}
	return out
}

// pixelDiff summarises per-pixel differences: the largest channel difference, its mean over
// all channels, and the fraction of pixels whose largest channel difference exceeds 3.
type pixelDiff struct {
	max     int
	mean    float64
	over3   float64
	samples int
}

func comparePixels(a, b *image.RGBA) pixelDiff {
	var d pixelDiff
	var sum, over int
	for i := 0; i+3 < len(a.Pix); i += 4 {
		m := 0
		for c := 0; c < 3; c++ {
			v := int(a.Pix[i+c]) - int(b.Pix[i+c])
			if v < 0 {
				v = -v
			}
			sum += v
			m = max(m, v)
		}
		d.max = max(d.max, m)
		if m > 3 {
			over++
		}
	}
	n := len(a.Pix) / 4
	d.samples = n
	d.mean = float64(sum) / float64(3*n)
	d.over3 = float64(over) / float64(n)
	return d
}

// boxShrink averages s×s cells of img (clipped at the edges) into a ceil(w/s)×ceil(h/s) image.
func boxShrink(img *image.RGBA, s int) *image.RGBA {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	out := image.NewRGBA(image.Rect(0, 0, ceilDiv(w, s), ceilDiv(h, s)))
	for y := 0; y < out.Rect.Dy(); y++ {
		for x := 0; x < out.Rect.Dx(); x++ {
			var sum [3]int
			n := 0
			for yy := y * s; yy < min(y*s+s, h); yy++ {
				for xx := x * s; xx < min(x*s+s, w); xx++ {
					p := img.Pix[yy*img.Stride+4*xx:]
					sum[0], sum[1], sum[2] = sum[0]+int(p[0]), sum[1]+int(p[1]), sum[2]+int(p[2])
					n++
				}
			}
			q := out.Pix[y*out.Stride+4*x:]
			for c := 0; c < 3; c++ {
				q[c] = uint8((sum[c] + n/2) / n)
			}
			q[3] = 255
		}
	}
	return out
}

// psnr is the peak signal-to-noise ratio in dB between two RGBA images over R, G and B.
func psnr(a, b *image.RGBA) float64 {
	var se float64
	for i := 0; i+3 < len(a.Pix); i += 4 {
		for c := 0; c < 3; c++ {
			v := float64(a.Pix[i+c]) - float64(b.Pix[i+c])
			se += v * v
		}
	}
	mse := se / float64(3*len(a.Pix)/4)
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/mse)
}

func TestDecodeJPEGMatchesStdlib(t *testing.T) {
	for _, f := range jpegTestFiles(t) {
		t.Run(f.name, func(t *testing.T) {
			ref, refErr := jpeg.Decode(bytes.NewReader(f.data))
			got, err := decodeJPEG(f.data, 1)
			if refErr != nil {
				t.Skipf("image/jpeg refuses it (%v); decodeJPEG gave %v", refErr, err)
			}
			if err != nil {
				t.Fatalf("decodeJPEG(%s, 1) error = %v, want nil", f.name, err)
			}
			if got.Bounds() != ref.Bounds() {
				t.Fatalf("decodeJPEG(%s, 1) bounds = %v, want %v",
					f.name, got.Bounds(), ref.Bounds())
			}
			if reflect.TypeOf(got) != reflect.TypeOf(ref) {
				t.Errorf("decodeJPEG(%s, 1) type = %T, want %T", f.name, got, ref)
			}
			d := comparePixels(rgbaOf(got), rgbaOf(ref))
			t.Logf("%s: max %d, mean %.3f, over 3: %.4f%%", f.name, d.max, d.mean, 100*d.over3)
			// Achieved: max 3, mean ≤ 0.05 on every file, none over 3.
			if d.mean >= 0.1 || d.over3 > 0.001 || d.max > 4 {
				t.Errorf("decodeJPEG(%s, 1) differs from image/jpeg: max %d, mean %.3f, "+
					"over 3 %.4f%%; want max ≤ 4, mean < 0.1, over 3 ≤ 0.1%%",
					f.name, d.max, d.mean, 100*d.over3)
			}
		})
	}
}

func TestDecodeJPEGScaled(t *testing.T) {
	for _, f := range jpegTestFiles(t) {
		ref, err := jpeg.Decode(bytes.NewReader(f.data))
		if err != nil {
			continue
		}
		refRGBA := rgbaOf(ref)
		for _, s := range []int{2, 4, 8} {
			t.Run(fmt.Sprintf("%s/1:%d", f.name, s), func(t *testing.T) {
				got, err := decodeJPEG(f.data, s)
				if err != nil {
					t.Fatalf("decodeJPEG(%s, %d) error = %v", f.name, s, err)
				}
				b := ref.Bounds()
				want := image.Rect(0, 0, ceilDiv(b.Dx(), s), ceilDiv(b.Dy(), s))
				if got.Bounds() != want {
					t.Fatalf("decodeJPEG(%s, %d) bounds = %v, want %v",
						f.name, s, got.Bounds(), want)
				}
				// Bounds a little under what is achieved: the real photos reach 43-47 dB, the
				// small, sharp q50 test images 32-34. A CMYK file is shrunk in ink values,
				// which convert to RGB nonlinearly, while the reference is averaged after
				// conversion, so it gets less.
				bound := 32.0
				if _, ok := ref.(*image.CMYK); ok {
					bound = 29
				}
				if strings.HasPrefix(f.name, "flower") {
					bound = 42
				}
				p := psnr(rgbaOf(got), boxShrink(refRGBA, s))
				t.Logf("%s 1:%d: PSNR %.1f dB", f.name, s, p)
				if p < bound {
					t.Errorf("decodeJPEG(%s, %d) PSNR = %.1f dB, want ≥ %.0f",
						f.name, s, p, bound)
				}
			})
		}
	}
}

func TestReadJPEGInfo(t *testing.T) {
	components := map[color.Model]int{
		color.GrayModel: 1, color.YCbCrModel: 3, color.RGBAModel: 3, color.CMYKModel: 4,
	}
	for _, f := range jpegTestFiles(t) {
		t.Run(f.name, func(t *testing.T) {
			cfg, refErr := jpeg.DecodeConfig(bytes.NewReader(f.data))
			info, err := readJPEGInfo(f.data)
			if refErr != nil {
				t.Skipf("image/jpeg refuses the header: %v", refErr)
			}
			if err != nil {
				t.Fatalf("readJPEGInfo(%s) error = %v", f.name, err)
			}
			if info.Width != cfg.Width || info.Height != cfg.Height {
				t.Errorf("readJPEGInfo(%s) size = %dx%d, want %dx%d",
					f.name, info.Width, info.Height, cfg.Width, cfg.Height)
			}
			if n := components[cfg.ColorModel]; info.Components != n {
				t.Errorf("readJPEGInfo(%s).Components = %d, want %d", f.name, info.Components, n)
			}
			wantProg := strings.Contains(f.name, "progressive") ||
				strings.Contains(f.name, "separate")
			if strings.HasPrefix(f.name, "video-") || strings.HasPrefix(f.name, "flower") {
				if info.Progressive != wantProg {
					t.Errorf("readJPEGInfo(%s).Progressive = %v, want %v",
						f.name, info.Progressive, wantProg)
				}
			}
		})
	}
}

// TestDecodeJPEGColours checks the quadrant colours of the coloured 64×32 cases at every
// scale: red top-left, lime top-right, blue bottom-left, yellow bottom-right.
func TestDecodeJPEGColours(t *testing.T) {
	want := [4]color.RGBA{{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}, {255, 255, 0, 255}}
	for _, name := range []string{"orient-1.jpg", "cmyk-ycck-adobe.jpg", "rgb-no-ycbcr.jpg"} {
		data, err := os.ReadFile(jpegCase(t, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []int{1, 2, 4, 8} {
			t.Run(fmt.Sprintf("%s/1:%d", name, s), func(t *testing.T) {
				img, err := decodeJPEG(data, s)
				if err != nil {
					t.Fatalf("decodeJPEG(%s, %d) error = %v", name, s, err)
				}
				b := img.Bounds()
				pts := [4]image.Point{{b.Dx() / 4, b.Dy() / 4}, {3 * b.Dx() / 4, b.Dy() / 4},
					{b.Dx() / 4, 3 * b.Dy() / 4}, {3 * b.Dx() / 4, 3 * b.Dy() / 4}}
				for i, p := range pts {
					c := color.RGBAModel.Convert(img.At(p.X, p.Y)).(color.RGBA)
					if !near(c, want[i], 12) {
						t.Errorf("decodeJPEG(%s, %d).At(%v) = %v, want %v", name, s, p, c, want[i])
					}
				}
			})
		}
	}
}

func near(a, b color.RGBA, tol int) bool {
	d := func(x, y uint8) bool { return int(x)-int(y) <= tol && int(y)-int(x) <= tol }
	return d(a.R, b.R) && d(a.G, b.G) && d(a.B, b.B)
}

func TestDecodeJPEGTruncated(t *testing.T) {
	names := []string{"truncated-baseline-60pct.jpg", "truncated-progressive-60pct.jpg"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(jpegCase(t, name))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []int{1, 2, 4, 8} {
				img, err := decodeJPEG(data, s)
				if !errors.Is(err, errJPEGTruncated) {
					t.Fatalf("decodeJPEG(%s, %d) error = %v, want errJPEGTruncated", name, s, err)
				}
				if img == nil {
					t.Fatalf("decodeJPEG(%s, %d) partial image = nil, want one", name, s)
				}
				if b := img.Bounds(); b != image.Rect(0, 0, 128/s, 128/s) {
					t.Fatalf("decodeJPEG(%s, %d) partial image bounds = %v, want 128/%d square",
						name, s, b, s)
				}
			}
		})
	}
}

// TestDecodeJPEGTruncatedTop checks that a sequential file cut short keeps its decoded top
// and paints the rest mid-gray.
func TestDecodeJPEGTruncatedTop(t *testing.T) {
	full, err := os.ReadFile(jpegCase(t, "baseline.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(jpegCase(t, "truncated-baseline-60pct.jpg"))
	ref, err := decodeJPEG(full, 1)
	if err != nil {
		t.Fatal(err)
	}
	img, err := decodeJPEG(data, 1)
	if !errors.Is(err, errJPEGTruncated) {
		t.Fatalf("decodeJPEG(truncated) error = %v, want errJPEGTruncated", err)
	}
	top := comparePixels(rgbaOf(crop(img, 0, 16)), rgbaOf(crop(ref, 0, 16)))
	if top.max != 0 {
		t.Errorf("decodeJPEG(truncated) top rows differ from the full file by %d, want 0", top.max)
	}
	last := img.At(127, 127)
	if g := color.GrayModel.Convert(last).(color.Gray); g.Y < 120 || g.Y > 136 {
		t.Errorf("decodeJPEG(truncated).At(127, 127) = %v, want mid-gray", last)
	}
}

func crop(img image.Image, y0, y1 int) image.Image {
	return img.(interface {
		SubImage(image.Rectangle) image.Image
	}).SubImage(image.Rect(0, y0, img.Bounds().Dx(), y1))
}

// TestDecodeJPEGCutAnywhere cuts small files at many lengths and flips bytes: decodeJPEG may
// fail but must neither panic nor return an image of the wrong size.
func TestDecodeJPEGCutAnywhere(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, f := range jpegTestFiles(t) {
		if len(f.data) > 40000 {
			continue
		}
		t.Run(f.name, func(t *testing.T) {
			for n := 0; n < len(f.data); n += 1 + len(f.data)/97 {
				checkNoPanic(t, f.data[:n])
				mut := bytes.Clone(f.data)
				mut[rng.Intn(len(mut))] ^= byte(1 + rng.Intn(255))
				checkNoPanic(t, mut)
			}
		})
	}
}

func checkNoPanic(t *testing.T, data []byte) {
	t.Helper()
	info, err := readJPEGInfo(data)
	if err != nil || info.Width*info.Height > 1<<22 {
		return
	}
	for _, s := range []int{1, 8} {
		img, err := decodeJPEG(data, s)
		if img == nil {
			continue
		}
		w, h := info.decodedSize(s)
		if img.Bounds() != image.Rect(0, 0, w, h) {
			t.Fatalf("decodeJPEG(%d bytes, %d) bounds = %v (err %v), want %dx%d",
				len(data), s, img.Bounds(), err, w, h)
		}
	}
}

func TestDecodeJPEGBomb(t *testing.T) {
	data, err := os.ReadFile(jpegCase(t, "jpeg-sof-65500x65500.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := readJPEGInfo(data)
	if err != nil || info.Width != 65500 || info.Height != 65500 {
		t.Fatalf("readJPEGInfo(bomb) = %+v, %v; want 65500x65500", info, err)
	}
	if b := info.decodeBytes(8); b < 65500*65500/64 {
		t.Errorf("readJPEGInfo(bomb).decodeBytes(8) = %d, want ≥ %d", b, 65500*65500/64)
	}
	for _, s := range []int{1, 8} {
		if img, err := decodeJPEG(data, s); !errors.Is(err, errJPEGTooLarge) || img != nil {
			t.Errorf("decodeJPEG(bomb, %d) = %v, %v; want nil, errJPEGTooLarge", s, img, err)
		}
	}
}

func TestDecodeJPEGBadScale(t *testing.T) {
	data, err := os.ReadFile(jpegCase(t, "gray.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []int{0, 3, 16, -1} {
		if _, err := decodeJPEG(data, s); !errors.Is(err, errJPEGScale) {
			t.Errorf("decodeJPEG(gray, %d) error = %v, want errJPEGScale", s, err)
		}
	}
}

func TestJPEGScaleFor(t *testing.T) {
	tests := []struct {
		w, h, needW, needH, want int
	}{
		{1920, 1080, 300, 0, 4},
		{1920, 1080, 240, 0, 8},
		{1920, 1080, 241, 0, 4},
		{1920, 1080, 0, 135, 8},
		{1920, 1080, 0, 136, 4},
		{1920, 1080, 300, 600, 1},
		{1920, 1080, 960, 540, 2},
		{1920, 1080, 1920, 1080, 1},
		{1920, 1080, 4000, 0, 1},
		{1921, 1081, 241, 136, 8},
		{1920, 1080, 0, 0, 1},
		{10, 10, 1, 1, 8},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dx%d-%dx%d", tt.w, tt.h, tt.needW, tt.needH), func(t *testing.T) {
			if got := jpegScaleFor(tt.w, tt.h, tt.needW, tt.needH); got != tt.want {
				t.Errorf("jpegScaleFor(%d, %d, %d, %d) = %d, want %d",
					tt.w, tt.h, tt.needW, tt.needH, got, tt.want)
			}
		})
	}
}

// refIDCT is the inverse DCT of T.81 A.3.3 in floating point, sampled at the centre of each
// (8/w)×(8/h) group of an 8×8 block, from the coefficients with u < w and v < h.
func refIDCT(blk *[64]int32, w, h int) []float64 {
	kx, ky := 8/w, 8/h
	out := make([]float64, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			px, py := float64(kx*x)+float64(kx-1)/2, float64(ky*y)+float64(ky-1)/2
			var s float64
			for v := 0; v < h; v++ {
				for u := 0; u < w; u++ {
					cu, cv := 1.0, 1.0
					if u == 0 {
						cu = 1 / math.Sqrt2
					}
					if v == 0 {
						cv = 1 / math.Sqrt2
					}
					s += cu * cv * float64(blk[v*8+u]) *
						math.Cos((2*px+1)*float64(u)*math.Pi/16) *
						math.Cos((2*py+1)*float64(v)*math.Pi/16)
				}
			}
			out[y*w+x] = math.Max(0, math.Min(255, s/4+128))
		}
	}
	return out
}

func TestIDCTAgainstFloat(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	square := map[int]func(*[64]int32, []byte, int){8: idct8, 4: idct4, 2: idct2}
	for _, w := range []int{8, 4, 2, 1} {
		for _, h := range []int{8, 4, 2, 1} {
			t.Run(fmt.Sprintf("%dx%d", w, h), func(t *testing.T) {
				idct := func(blk *[64]int32, dst []byte) { idctRect(blk, dst, w, w, h) }
				if f := square[w]; f != nil && w == h {
					idct = func(blk *[64]int32, dst []byte) { f(blk, dst, w) }
				}
				worst := 0.0
				for i := 0; i < 2000; i++ {
					var blk [64]int32
					for j := 0; j < 1+rng.Intn(64); j++ {
						blk[rng.Intn(64)] = int32(rng.Intn(512) - 256)
					}
					blk[0] = int32(rng.Intn(2048) - 1024)
					want := refIDCT(&blk, w, h)
					dst := make([]byte, w*h)
					idct(&blk, dst)
					for j := range dst {
						worst = math.Max(worst, math.Abs(float64(dst[j])-want[j]))
					}
				}
				if worst > 1 {
					t.Errorf("idct %dx%d max error from float = %.2f, want ≤ 1", w, h, worst)
				}
			})
		}
	}
}

func FuzzDecodeJPEG(f *testing.F) {
	// testdata/fuzz/FuzzDecodeJPEG holds the small case files; Go's own progressive and
	// subsampled files are added from GOROOT when small enough.
	goroot := filepath.Join(runtime.GOROOT(), "src", "image", "testdata")
	paths, _ := filepath.Glob(filepath.Join(goroot, "*q50*.jpeg"))
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil && len(data) < 12000 {
			f.Add(data)
		}
	}
	lv := func(bx, by int) int { return 30 + (bx*29+by*71)%190 }
	y3x1 := []synthComp{{1, 3, 1, lv}, {2, 1, 1, lv}, {3, 1, 1, lv}}
	f.Add(makeDCOnlyJPEG(40, 20, y3x1, synthOptions{adobe: -1, progressive: true, restart: 2}))
	f.Add(makeDCOnlyJPEG(40, 20, y3x1, synthOptions{adobe: 2, restart: 1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := readJPEGInfo(data)
		if err != nil || info.Width*info.Height > 1<<20 {
			return
		}
		for _, s := range []int{1, 2, 8} {
			img, err := decodeJPEG(data, s)
			if img == nil {
				if err == nil {
					t.Fatalf("decodeJPEG(%d) = nil, nil", s)
				}
				continue
			}
			w, h := info.decodedSize(s)
			if img.Bounds() != image.Rect(0, 0, w, h) {
				t.Fatalf("decodeJPEG(%d) bounds = %v, want %dx%d", s, img.Bounds(), w, h)
			}
		}
	})
}

// benchPhotos are the benchmark inputs: the committed 1080p photo and, when present, the
// 2268×1512 progressive photo from ../shared/photos.
var benchPhotos = []string{
	filepath.Join("testdata", "photos", "flower-1920x1080.jpg"),
	filepath.Join("..", "shared", "photos", "flower-2268x1512-progressive.jpg"),
}

// BenchmarkDecodeJPEG compares image/jpeg with decodeJPEG at each scale. Besides wall time
// it reports thread-cpu-ns/op, the CPU time of the benchmark's own thread, which other load
// on a shared machine disturbs far less.
func BenchmarkDecodeJPEG(b *testing.B) {
	for _, p := range benchPhotos {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Logf("skip %s: %v", p, err)
			continue
		}
		name := strings.TrimSuffix(filepath.Base(p), ".jpg")
		b.Run(name+"/stdlib", func(b *testing.B) {
			benchDecode(b, func() error {
				_, err := jpeg.Decode(bytes.NewReader(data))
				return err
			})
		})
		for _, s := range []int{1, 2, 4, 8} {
			b.Run(fmt.Sprintf("%s/1:%d", name, s), func(b *testing.B) {
				benchDecode(b, func() error {
					_, err := decodeJPEG(data, s)
					return err
				})
			})
		}
	}
}

// benchDecode runs decode b.N times on one locked OS thread and reports its CPU time.
func benchDecode(b *testing.B, decode func() error) {
	b.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	start := threadCPU()
	for i := 0; i < b.N; i++ {
		if err := decode(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(threadCPU()-start)/float64(b.N), "thread-cpu-ns/op")
}

// threadCPU is the CPU time the calling OS thread has used, in nanoseconds.
func threadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestDecodeJPEGNoEOI drops the final EOI marker: a sequential file is then still complete,
// a progressive one may lack scans and reports truncation with its image.
func TestDecodeJPEGNoEOI(t *testing.T) {
	tests := []struct {
		name          string
		wantTruncated bool
	}{
		{"baseline.jpg", false},
		{"restart-every-mcu-row.jpg", false},
		{"progressive.jpg", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(jpegCase(t, tt.name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(data, []byte{0xFF, 0xD9}) {
				t.Fatalf("%s does not end with EOI", tt.name)
			}
			full, err := decodeJPEG(data, 1)
			if err != nil {
				t.Fatal(err)
			}
			img, err := decodeJPEG(data[:len(data)-2], 1)
			if got := errors.Is(err, errJPEGTruncated); got != tt.wantTruncated || img == nil {
				t.Fatalf("decodeJPEG(%s without EOI) = %v, %v; want an image, truncated %v",
					tt.name, img != nil, err, tt.wantTruncated)
			}
			if d := comparePixels(rgbaOf(img), rgbaOf(full)); d.max != 0 {
				t.Errorf("decodeJPEG(%s without EOI) differs from the full file by %d, want 0",
					tt.name, d.max)
			}
		})
	}
}

// TestDecodeJPEGRestartVariants checks the restart cases against each other: fill bytes
// (extra 0xFF) before every RST marker and the 0xFF00 padding file change no pixel, and the
// separately encoded baseline and progressive files agree within JPEG error.
func TestDecodeJPEGRestartVariants(t *testing.T) {
	read := func(name string) []byte {
		t.Helper()
		data, err := os.ReadFile(jpegCase(t, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	withRST := read("restart-every-mcu-row.jpg")
	ref, err := decodeJPEG(withRST, 1)
	if err != nil {
		t.Fatal(err)
	}
	filled := insertFillBeforeRST(withRST)
	if len(filled) == len(withRST) {
		t.Fatal("restart-every-mcu-row.jpg has no RST marker")
	}
	tests := []struct {
		name       string
		data       []byte
		maxDiff    int
		meanDiffLE float64
	}{
		{"restart-with-fill-bytes", filled, 0, 0},
		{"restart-ff00-padding.jpg", read("restart-ff00-padding.jpg"), 0, 0},
		{"baseline.jpg", read("baseline.jpg"), 24, 2},
		{"progressive.jpg", read("progressive.jpg"), 24, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := decodeJPEG(tt.data, 1)
			if err != nil {
				t.Fatalf("decodeJPEG(%s) error = %v", tt.name, err)
			}
			d := comparePixels(rgbaOf(img), rgbaOf(ref))
			if d.max > tt.maxDiff || d.mean > tt.meanDiffLE {
				t.Errorf("decodeJPEG(%s) differs from restart-every-mcu-row.jpg: max %d, "+
					"mean %.2f; want max ≤ %d, mean ≤ %.0f",
					tt.name, d.max, d.mean, tt.maxDiff, tt.meanDiffLE)
			}
		})
	}
}

// insertFillBeforeRST returns data with two 0xFF fill bytes before each RST marker.
func insertFillBeforeRST(data []byte) []byte {
	var out []byte
	for i := 0; i < len(data); i++ {
		if data[i] == 0xFF && i+1 < len(data) && data[i+1] >= 0xD0 && data[i+1] <= 0xD7 {
			out = append(out, 0xFF, 0xFF)
		}
		out = append(out, data[i])
	}
	return out
}

// synthComp is one component of a synthetic DC-only JPEG: its id, sampling factors and the
// sample level (0-255) of each of its blocks.
type synthComp struct {
	id    byte
	h, v  int
	level func(bx, by int) int
}

// bitWriter packs Huffman-coded bits MSB first and stuffs a 0x00 after each 0xFF.
type bitWriter struct {
	out  []byte
	acc  uint32
	nacc uint
}

func (bw *bitWriter) write(v uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		bw.acc = bw.acc<<1 | (v>>uint(i))&1
		bw.nacc++
		if bw.nacc == 8 {
			bw.out = append(bw.out, byte(bw.acc))
			if byte(bw.acc) == 0xFF {
				bw.out = append(bw.out, 0)
			}
			bw.acc, bw.nacc = 0, 0
		}
	}
}

// synthOptions shapes a synthetic file: an Adobe APP14 transform (-1 for none), a
// progressive frame (one DC scan, then one AC scan of EOBs per component), and a restart
// interval in MCUs (0 for none).
type synthOptions struct {
	adobe       int
	progressive bool
	restart     int
	jfif        bool
}

// makeDCOnlyJPEG writes a JPEG of w×h whose blocks carry only a DC coefficient, so every
// block decodes to one flat level at any scale. The quantiser is 8, making a level exact; DC
// categories use 4-bit codes and the AC table holds only EOB (code 0).
func makeDCOnlyJPEG(w, h int, comps []synthComp, o synthOptions) []byte {
	out := []byte{0xFF, 0xD8}
	if o.jfif {
		out = appendSegment(out, 0xE0, []byte("JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"))
	}
	if o.adobe >= 0 {
		out = appendSegment(out, 0xEE, []byte("Adobe\x00\x64\x00\x00\x00\x00"+
			string(rune(o.adobe))))
	}
	dqt := []byte{0}
	for i := 0; i < 64; i++ {
		dqt = append(dqt, 8)
	}
	out = appendSegment(out, 0xDB, dqt)
	sof := []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), byte(len(comps))}
	hmax, vmax := 1, 1
	for _, c := range comps {
		sof = append(sof, c.id, byte(c.h<<4|c.v), 0)
		hmax, vmax = max(hmax, c.h), max(vmax, c.v)
	}
	sofMarker := byte(0xC0)
	if o.progressive {
		sofMarker = 0xC2
	}
	out = appendSegment(out, sofMarker, sof)
	dht := append([]byte{0x00, 0, 0, 0, 12}, make([]byte, 12)...)
	for i := 0; i < 12; i++ {
		dht = append(dht, byte(i))
	}
	dht = append(dht, 0x10, 1)
	dht = append(dht, make([]byte, 15)...)
	out = appendSegment(out, 0xC4, append(dht, 0x00))
	if o.restart > 0 {
		out = appendSegment(out, 0xDD, []byte{byte(o.restart >> 8), byte(o.restart)})
	}

	se := byte(63)
	if o.progressive {
		se = 0
	}
	sos := []byte{byte(len(comps))}
	for _, c := range comps {
		sos = append(sos, c.id, 0x00)
	}
	out = appendSegment(out, 0xDA, append(sos, 0, se, 0))
	out = append(out, synthDCScan(w, h, comps, !o.progressive, o.restart)...)
	for i := 0; o.progressive && i < len(comps); i++ {
		out = appendSegment(out, 0xDA, []byte{1, comps[i].id, 0x00, 1, 63, 0})
		out = append(out, synthEOBScan(w, h, comps, i, o.restart)...)
	}
	return append(out, 0xFF, 0xD9)
}

func appendSegment(out []byte, marker byte, payload []byte) []byte {
	n := len(payload) + 2
	return append(append(out, 0xFF, marker, byte(n>>8), byte(n)), payload...)
}

// synthDCScan codes every MCU's DC levels, each block followed by an EOB when eob is set,
// with an RST marker every restart MCUs.
func synthDCScan(w, h int, comps []synthComp, eob bool, restart int) []byte {
	hmax, vmax := 1, 1
	for _, c := range comps {
		hmax, vmax = max(hmax, c.h), max(vmax, c.v)
	}
	var bw bitWriter
	pred := make([]int, len(comps))
	mcus, perRow := ceilDiv(h, 8*vmax)*ceilDiv(w, 8*hmax), ceilDiv(w, 8*hmax)
	for m := 0; m < mcus; m++ {
		if restart > 0 && m > 0 && m%restart == 0 {
			bw.restart(m/restart - 1)
			clear(pred)
		}
		mx, my := m%perRow, m/perRow
		for i, c := range comps {
			for v := 0; v < c.v; v++ {
				for u := 0; u < c.h; u++ {
					dc := c.level(mx*c.h+u, my*c.v+v) - 128
					writeDC(&bw, dc-pred[i])
					pred[i] = dc
					if eob {
						bw.write(0, 1)
					}
				}
			}
		}
	}
	bw.pad()
	return bw.out
}

// synthEOBScan codes a progressive AC scan of component i whose every block is one EOB.
func synthEOBScan(w, h int, comps []synthComp, i, restart int) []byte {
	hmax, vmax := 1, 1
	for _, c := range comps {
		hmax, vmax = max(hmax, c.h), max(vmax, c.v)
	}
	bx := ceilDiv(ceilDiv(w*comps[i].h, hmax), 8)
	by := ceilDiv(ceilDiv(h*comps[i].v, vmax), 8)
	var bw bitWriter
	for b := 0; b < bx*by; b++ {
		if restart > 0 && b > 0 && b%restart == 0 {
			bw.restart(b/restart - 1)
		}
		bw.write(0, 1)
	}
	bw.pad()
	return bw.out
}

// pad fills the last byte with 1 bits.
func (bw *bitWriter) pad() {
	for bw.nacc != 0 {
		bw.write(1, 1)
	}
}

// restart pads the data and appends RSTn, n being the restart count modulo 8.
func (bw *bitWriter) restart(n int) {
	bw.pad()
	bw.out = append(bw.out, 0xFF, 0xD0+byte(n%8))
}

// writeDC codes a DC difference: its 4-bit category, then the magnitude bits (F.1.2.1).
func writeDC(bw *bitWriter, diff int) {
	cat, mag := 0, diff
	for a := max(diff, -diff); a > 0; a >>= 1 {
		cat++
	}
	if diff < 0 {
		mag = diff + (1 << cat) - 1
	}
	bw.write(uint32(cat), 4)
	bw.write(uint32(mag), uint(cat))
}

// TestDecodeJPEGOddSampling decodes synthetic files whose sampling image.YCbCr cannot
// describe (3×1 luma, luma sparser than chroma, Cb and Cr differing), a subsampled CMYK
// file, and sequential and progressive files with restart intervals, at every scale, and
// checks every pixel against the block levels it was made from.
func TestDecodeJPEGOddSampling(t *testing.T) {
	lv := func(seed int) func(bx, by int) int {
		return func(bx, by int) int { return 40 + (bx*37+by*91+seed*53)%180 }
	}
	y3x1 := []synthComp{{1, 3, 1, lv(0)}, {2, 1, 1, lv(1)}, {3, 1, 1, lv(2)}}
	y420 := []synthComp{{1, 2, 2, lv(0)}, {2, 1, 1, lv(1)}, {3, 1, 1, lv(2)}}
	tests := []struct {
		name  string
		w, h  int
		comps []synthComp
		opt   synthOptions
	}{
		{"ycbcr-3x1", 52, 20, y3x1, synthOptions{adobe: -1}},
		{"ycbcr-1x3", 20, 52, []synthComp{{1, 1, 3, lv(0)}, {2, 1, 1, lv(1)},
			{3, 1, 1, lv(2)}}, synthOptions{adobe: -1}},
		{"ycbcr-chroma-denser", 40, 24, []synthComp{{1, 1, 1, lv(0)}, {2, 2, 2, lv(1)},
			{3, 2, 2, lv(2)}}, synthOptions{adobe: -1}},
		{"ycbcr-cb-cr-differ", 40, 24, []synthComp{{1, 2, 2, lv(0)}, {2, 1, 2, lv(1)},
			{3, 2, 1, lv(2)}}, synthOptions{adobe: -1}},
		{"cmyk-2x1-k1x1", 40, 24, []synthComp{{1, 2, 1, lv(0)}, {2, 2, 1, lv(1)},
			{3, 2, 1, lv(2)}, {4, 1, 1, lv(3)}}, synthOptions{adobe: 0}},
		{"ycbcr-3x1-restart-3", 100, 20, y3x1, synthOptions{adobe: -1, restart: 3}},
		{"progressive-420-restart-5", 70, 50, y420,
			synthOptions{adobe: -1, progressive: true, restart: 5}},
		{"progressive-3x1-restart-1", 52, 20, y3x1,
			synthOptions{adobe: -1, progressive: true, restart: 1}},
	}
	for _, tt := range tests {
		data := makeDCOnlyJPEG(tt.w, tt.h, tt.comps, tt.opt)
		if tt.opt.restart > 0 && !bytes.Contains(data, []byte{0xFF, 0xD1}) {
			t.Fatalf("%s has no RST1 marker", tt.name)
		}
		if ref, err := jpeg.Decode(bytes.NewReader(data)); err == nil {
			got, err := decodeJPEG(data, 1)
			if err != nil {
				t.Fatalf("decodeJPEG(%s, 1) error = %v", tt.name, err)
			}
			if d := comparePixels(rgbaOf(got), rgbaOf(ref)); d.max > 3 {
				t.Errorf("decodeJPEG(%s, 1) differs from image/jpeg by %d, want ≤ 3",
					tt.name, d.max)
			}
		}
		for _, s := range []int{1, 2, 4, 8} {
			t.Run(fmt.Sprintf("%s/1:%d", tt.name, s), func(t *testing.T) {
				img, err := decodeJPEG(data, s)
				if err != nil {
					t.Fatalf("decodeJPEG(%s, %d) error = %v", tt.name, s, err)
				}
				checkSynthetic(t, img, tt.w, tt.h, s, tt.comps)
			})
		}
	}
}

// checkSynthetic compares each pixel of a decoded synthetic file with the colour of the
// blocks covering it (nearest sample for subsampled components).
func checkSynthetic(t *testing.T, img image.Image, w, h, s int, comps []synthComp) {
	t.Helper()
	if b := img.Bounds(); b != image.Rect(0, 0, ceilDiv(w, s), ceilDiv(h, s)) {
		t.Fatalf("bounds = %v, want %dx%d", b, ceilDiv(w, s), ceilDiv(h, s))
	}
	hmax, vmax := 1, 1
	for _, c := range comps {
		hmax, vmax = max(hmax, c.h), max(vmax, c.v)
	}
	for y := 0; y < ceilDiv(h, s); y++ {
		for x := 0; x < ceilDiv(w, s); x++ {
			var lv [4]uint8
			for i, c := range comps {
				// full-resolution position, then the block of the component covering it
				fx, fy := x*s*c.h/hmax, y*s*c.v/vmax
				lv[i] = uint8(c.level(fx/8, fy/8))
			}
			var want color.Color = color.YCbCr{lv[0], lv[1], lv[2]}
			if len(comps) == 4 {
				want = color.CMYK{255 - lv[0], 255 - lv[1], 255 - lv[2], 255 - lv[3]}
			}
			got := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			if w := color.RGBAModel.Convert(want).(color.RGBA); !near(got, w, 2) {
				t.Fatalf("At(%d, %d) = %v, want %v (levels %v)", x, y, got, w, lv)
			}
		}
	}
}

// TestDecodeBytesEstimate checks jpegInfo.decodeBytes against what decodeJPEG really
// allocates, so that admission by memory can trust it.
func TestDecodeBytesEstimate(t *testing.T) {
	for _, p := range benchPhotos {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Logf("skip %s: %v", p, err)
			continue
		}
		info, err := readJPEGInfo(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []int{1, 2, 4, 8} {
			t.Run(fmt.Sprintf("%s/1:%d", filepath.Base(p), s), func(t *testing.T) {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				if _, err := decodeJPEG(data, s); err != nil {
					t.Fatal(err)
				}
				runtime.ReadMemStats(&after)
				got, est := int64(after.TotalAlloc-before.TotalAlloc), info.decodeBytes(s)
				// the estimate leaves out the decoder's tables and scan headers (under 128 KB)
				if est < got-128<<10 || est > got+got/4 {
					t.Errorf("decodeBytes(%d) = %d, decodeJPEG allocated %d", s, est, got)
				}
			})
		}
	}
}

func BenchmarkReadJPEGInfo(b *testing.B) {
	data, err := os.ReadFile(benchPhotos[0])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("katana", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := readJPEGInfo(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stdlib-DecodeConfig", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := jpeg.DecodeConfig(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDecodeJPEGColourRules checks how JFIF, Adobe APP14 and component ids choose the colour
// model, against image/jpeg's types and pixels wherever image/jpeg decodes the file.
func TestDecodeJPEGColourRules(t *testing.T) {
	lv := func(seed int) func(bx, by int) int {
		return func(bx, by int) int { return 50 + (bx*41+by*67+seed*29)%150 }
	}
	three := func(a, b, c byte) []synthComp {
		return []synthComp{{a, 1, 1, lv(0)}, {b, 1, 1, lv(1)}, {c, 1, 1, lv(2)}}
	}
	four := []synthComp{{1, 1, 1, lv(0)}, {2, 1, 1, lv(1)}, {3, 1, 1, lv(2)}, {4, 1, 1, lv(3)}}
	tests := []struct {
		name  string
		comps []synthComp
		opt   synthOptions
		want  string
	}{
		{"ids-123", three(1, 2, 3), synthOptions{adobe: -1}, "*image.YCbCr"},
		{"ids-RGB", three('R', 'G', 'B'), synthOptions{adobe: -1}, "*image.RGBA"},
		{"jfif-ids-RGB", three('R', 'G', 'B'), synthOptions{adobe: -1, jfif: true}, "*image.YCbCr"},
		{"adobe-0", three(1, 2, 3), synthOptions{adobe: 0}, "*image.RGBA"},
		{"adobe-1", three(1, 2, 3), synthOptions{adobe: 1}, "*image.YCbCr"},
		{"adobe-1-ids-RGB", three('R', 'G', 'B'), synthOptions{adobe: 1}, "*image.RGBA"},
		{"jfif-adobe-0", three(1, 2, 3), synthOptions{adobe: 0, jfif: true}, "*image.YCbCr"},
		{"cmyk-adobe-0", four, synthOptions{adobe: 0}, "*image.CMYK"},
		{"ycck-adobe-1", four, synthOptions{adobe: 1}, "*image.CMYK"},
		{"ycck-adobe-2", four, synthOptions{adobe: 2}, "*image.CMYK"},
		{"cmyk-no-adobe", four, synthOptions{adobe: -1}, "*image.CMYK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := makeDCOnlyJPEG(24, 16, tt.comps, tt.opt)
			got, err := decodeJPEG(data, 1)
			if err != nil {
				t.Fatalf("decodeJPEG(%s) error = %v", tt.name, err)
			}
			if typ := fmt.Sprintf("%T", got); typ != tt.want {
				t.Errorf("decodeJPEG(%s) type = %s, want %s", tt.name, typ, tt.want)
			}
			ref, err := jpeg.Decode(bytes.NewReader(data))
			if err != nil {
				t.Logf("image/jpeg refuses %s: %v", tt.name, err)
				return
			}
			if d := comparePixels(rgbaOf(got), rgbaOf(ref)); d.max > 1 {
				t.Errorf("decodeJPEG(%s) differs from image/jpeg (%T) by %d, want ≤ 1",
					tt.name, ref, d.max)
			}
		})
	}
}

// TestDecodeJPEGScaledSubsampling pins the subsampling of scaled YCbCr output: chroma is
// reduced less than luma, up to the output resolution.
func TestDecodeJPEGScaledSubsampling(t *testing.T) {
	goroot := filepath.Join(runtime.GOROOT(), "src", "image", "testdata")
	tests := []struct {
		path  string
		scale int
		want  image.YCbCrSubsampleRatio
	}{
		{filepath.Join(goroot, "video-001.q50.420.jpeg"), 1, image.YCbCrSubsampleRatio420},
		{filepath.Join(goroot, "video-001.q50.420.jpeg"), 2, image.YCbCrSubsampleRatio444},
		{filepath.Join(goroot, "video-001.q50.420.jpeg"), 8, image.YCbCrSubsampleRatio444},
		{filepath.Join(goroot, "video-001.q50.422.jpeg"), 4, image.YCbCrSubsampleRatio444},
		{filepath.Join(goroot, "video-001.q50.410.jpeg"), 1, image.YCbCrSubsampleRatio410},
		{filepath.Join(goroot, "video-001.q50.410.jpeg"), 2, image.YCbCrSubsampleRatio422},
		{filepath.Join(goroot, "video-001.q50.410.jpeg"), 4, image.YCbCrSubsampleRatio444},
		{filepath.Join(goroot, "video-001.q50.440.jpeg"), 2, image.YCbCrSubsampleRatio444},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/1:%d", filepath.Base(tt.path), tt.scale), func(t *testing.T) {
			data, err := os.ReadFile(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			img, err := decodeJPEG(data, tt.scale)
			if err != nil {
				t.Fatal(err)
			}
			y, ok := img.(*image.YCbCr)
			if !ok {
				t.Fatalf("decodeJPEG(%d) type = %T, want *image.YCbCr", tt.scale, img)
			}
			if y.SubsampleRatio != tt.want {
				t.Errorf("decodeJPEG(%d) ratio = %v, want %v", tt.scale, y.SubsampleRatio, tt.want)
			}
		})
	}
}

// jpegCase finds a JPEG case file by name in testdata/cases.
func jpegCase(t testing.TB, name string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join("testdata", "cases", "*", name))
	if len(m) == 0 {
		t.Fatalf("no case file %s", name)
	}
	return m[0]
}
