package pods

import (
	"testing"

	"github.com/pinacle/pinacle-node/podspec"
)

// The warm entry's steps are podSteps' own, in order, each joining a step
// that is in the list.
func TestWarmStepList(t *testing.T) {
	s := warmStepList()
	var names []string
	in := map[string]bool{}
	for _, st := range s.list {
		names = append(names, st.name)
		in[st.name] = true
	}
	want := []string{"files", "network", "image", "rootfs", "workspace", "bundle", "sandbox"}
	if len(names) != len(want) {
		t.Fatalf("steps %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("steps %v, want %v", names, want)
		}
	}
	for _, st := range s.list {
		if st.join != "" && !in[st.join] {
			t.Errorf("%s joins %s, which is not in the list", st.name, st.join)
		}
	}
	if s.list[1].join != "bundle" || s.list[6].join != "" {
		t.Errorf("network joins %q (want bundle), sandbox %q (want none)", s.list[1].join, s.list[6].join)
	}
	if s.crash {
		t.Error("a warm entry's bring-up must not hit the pods' crash points")
	}
}

// A warm entry serves specs of its image and limits with the default
// network; what a running sandbox cannot take on is named.
func TestWarmKey(t *testing.T) {
	base := func() *podspec.Pod {
		return &podspec.Pod{ID: "p1", Name: "a", BaseImage: "img:1", Resources: podspec.Resources{Tier: "dev.small", MemoryMB: 256}}
	}
	k1, why := warmKey(base())
	if k1 == "" {
		t.Fatalf("plain spec not claimable: %s", why)
	}
	other := base()
	other.ID, other.Name, other.Environment = "p2", "b", map[string]string{"K": "v"}
	other.Network.Egress = &podspec.Egress{Mode: podspec.EgressDefault}
	if k2, why := warmKey(other); k2 != k1 {
		t.Errorf("same image and limits, other name, env and an explicit default egress: key %q (%s), want %q", k2, why, k1)
	}
	mem := base()
	mem.Resources.MemoryMB = 512
	if k, _ := warmKey(mem); k == k1 || k == "" {
		t.Errorf("other memory: key %q", k)
	}
	repo := base()
	repo.GithubRepo = "o/r"
	if k, why := warmKey(repo); k != "" || why == "" {
		t.Errorf("a repository to clone: key %q, why %q", k, why)
	}
	none := base()
	none.Network.Egress = &podspec.Egress{Mode: podspec.EgressNone}
	if k, why := warmKey(none); k != "" || why == "" {
		t.Errorf("egress none: key %q, why %q", k, why)
	}
}
