// Command bench times a pull + unpack of a ~200 MB multi-layer image from a
// loopback registry with the image store against `skopeo copy` + `umoci
// unpack` of the same image, and prints the medians.
//
//	go run ./imagestore/bench [-size 200000000] [-layers 5] [-runs 3]
//	go run ./imagestore/bench -serve   # just serve test images, print refs
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"time"

	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/internal/testimage"
)

func main() {
	size := flag.Int64("size", 200_000_000, "uncompressed image size in bytes")
	layers := flag.Int("layers", 5, "layers besides the busybox base")
	runs := flag.Int("runs", 3, "runs of each contender")
	jobs := flag.Int("jobs", imagestore.DefaultJobs, "imagestore WithJobs")
	serve := flag.Bool("serve", false, "serve the busybox and large images and wait for ^C")
	flag.Parse()
	ctx := context.Background()

	fmt.Fprintf(os.Stderr, "building a %d MB image in %d+1 layers...\n", *size/1e6, *layers)
	img, err := testimage.Large(*size, *layers)
	check(err)
	reg := testimage.NewRegistry(nil)
	defer reg.Close()
	t0 := time.Now()
	ref, err := reg.Push(ctx, "bench/large:v1", img)
	check(err)
	fmt.Fprintf(os.Stderr, "pushed %s in %v\n", ref, time.Since(t0).Round(time.Millisecond))
	if *serve {
		bb, err := testimage.Busybox()
		check(err)
		bref, err := reg.Push(ctx, "busybox:latest", bb)
		check(err)
		fmt.Println(ref)
		fmt.Println(bref)
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt)
		<-c
		return
	}

	work, err := os.MkdirTemp("", "pinacle-bench-")
	check(err)
	defer os.RemoveAll(work)

	var ours, theirs, skopeoT, umociT []time.Duration
	for i := range *runs {
		root := filepath.Join(work, fmt.Sprintf("store%d", i))
		t0 := time.Now()
		s, err := imagestore.New(ctx, root, imagestore.WithJobs(*jobs))
		check(err)
		_, err = s.Pull(ctx, ref)
		check(err)
		ours = append(ours, time.Since(t0))
		check(os.RemoveAll(root))

		dir := filepath.Join(work, fmt.Sprintf("oci%d", i))
		bundle := filepath.Join(work, fmt.Sprintf("bundle%d", i))
		t0 = time.Now()
		run("skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://"+ref, "oci:"+dir+":v1")
		t1 := time.Now()
		run("umoci", "unpack", "--image", dir+":v1", bundle)
		t2 := time.Now()
		theirs = append(theirs, t2.Sub(t0))
		skopeoT = append(skopeoT, t1.Sub(t0))
		umociT = append(umociT, t2.Sub(t1))
		check(os.RemoveAll(dir))
		check(os.RemoveAll(bundle))
		fmt.Fprintf(os.Stderr, "run %d: imagestore %v, skopeo+umoci %v\n", i+1, ours[i].Round(time.Millisecond), theirs[i].Round(time.Millisecond))
	}
	fmt.Printf("image: %d MB uncompressed, %d layers, registry %s\n", *size/1e6, *layers+1, reg.Host)
	fmt.Printf("imagestore pull+unpack (jobs=%d): median %v  runs %v\n", *jobs, median(ours), rounded(ours))
	fmt.Printf("skopeo copy + umoci unpack:       median %v  runs %v (skopeo %v, umoci %v)\n", median(theirs), rounded(theirs), median(skopeoT), median(umociT))
}

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		check(fmt.Errorf("%s: %w (is it installed? hack/setup.sh installs skopeo and umoci)", name, err))
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}

func rounded(d []time.Duration) []time.Duration {
	out := make([]time.Duration, len(d))
	for i, x := range d {
		out[i] = x.Round(time.Millisecond)
	}
	return out
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
