package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
)

// Large builds a deterministic image of about total bytes (uncompressed)
// for benchmarks: the busybox base, one layer of many small files (like a
// node_modules) and the rest in layers of 1-4 MB files of data that gzip
// shrinks only somewhat (random bytes over a 64-letter alphabet), so both
// the network and the decompressor have real work.
func Large(total int64, layers int) (v1.Image, error) {
	if layers < 2 {
		return nil, fmt.Errorf("large image: want at least 2 layers, got %d", layers)
	}
	bl, err := BaseLayer()
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewChaCha8([32]byte{'p', 'i', 'n', 'a', 'c', 'l', 'e'}))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	fill := func(b []byte) {
		for i := range b {
			b[i] = alphabet[rng.Uint32()&63]
		}
	}
	ls := []v1.Layer{bl}
	small := total / 10
	perBig := (total - small) / int64(layers-1)
	for li := range layers {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		tw := tar.NewWriter(zw)
		dir := fmt.Sprintf("data/l%d", li)
		_ = tw.WriteHeader(&tar.Header{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: Epoch})
		_ = tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: Epoch})
		var written int64
		budget := perBig
		if li == 0 {
			budget = small
		}
		for i := 0; written < budget; i++ {
			size := int64(1<<20 + rng.IntN(3<<20))
			if li == 0 {
				size = int64(512 + rng.IntN(8<<10))
				if i%100 == 0 {
					_ = tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%s/d%03d/", dir, i/100), Typeflag: tar.TypeDir, Mode: 0o755, ModTime: Epoch})
				}
			}
			size = min(size, budget-written)
			data := make([]byte, size)
			fill(data)
			name := fmt.Sprintf("%s/f%05d", dir, i)
			if li == 0 {
				name = fmt.Sprintf("%s/d%03d/f%05d.js", dir, i/100, i)
			}
			if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: Epoch}); err != nil {
				return nil, err
			}
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
			written += size
		}
		if err := tw.Close(); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		gz := buf.Bytes()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(gz)), nil })
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	return FromLayers(Config{Cmd: []string{"/bin/sh"}}, ls...)
}
