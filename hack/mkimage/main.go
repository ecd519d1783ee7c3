// Command mkimage writes a busybox image (from Debian's busybox-static) as
// an OCI image layout, so the node can be tried and tested offline:
//
//	go run ./hack/mkimage -o /tmp/busybox-oci && pinacle-node image import /tmp/busybox-oci
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/v1"

	"github.com/pinacle/pinacle-node/internal/testimage"
)

func main() {
	out := flag.String("o", "", "output directory (an OCI image layout)")
	ref := flag.String("ref", "pinacle.local/busybox:latest", "reference recorded for the image")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "mkimage: -o DIR is required")
		os.Exit(2)
	}
	img, err := testimage.Busybox()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	if err := testimage.WriteOCILayout(*out, map[string]v1.Image{*ref: img}); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Println(*ref)
}
