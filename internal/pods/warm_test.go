package pods

import "testing"

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
