package oci

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Capabilities only init holds (AnnotationInitCapabilities) are not
// given to exec'd processes, and the spec is left alone.
func TestExecLeavesOutInitCapabilities(t *testing.T) {
	caps := []string{"CAP_CHOWN", "CAP_SYS_ADMIN"}
	spec := &specs.Spec{
		Process:     &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}},
		Annotations: map[string]string{AnnotationInitCapabilities: "CAP_SYS_ADMIN"},
	}
	got := withoutInitCaps(spec)
	for _, set := range [][]string{got.Bounding, got.Effective, got.Permitted} {
		if len(set) != 1 || set[0] != "CAP_CHOWN" {
			t.Fatalf("exec caps %v, want [CAP_CHOWN]", set)
		}
	}
	if len(spec.Process.Capabilities.Bounding) != 2 {
		t.Fatalf("the spec was modified: %v", spec.Process.Capabilities.Bounding)
	}
	if c := addCaps(got, []string{"CAP_SYS_ADMIN"}); len(c.Effective) != 2 {
		t.Fatalf("an explicit AddCaps is still honoured: %v", c.Effective)
	}
}
