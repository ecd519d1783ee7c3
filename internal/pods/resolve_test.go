package pods

import (
	"reflect"
	"testing"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/podspec"
)

// TestValidateResolvesAsCreate: pod validate (templates.ResolveDocument,
// on a spec file) and pod create (Manager.resolve, on the decoded spec)
// give the same spec for the same document, template flag and sets, or
// both fail.
func TestValidateResolvesAsCreate(t *testing.T) {
	r := newRig(t)
	cases := []struct {
		name, doc, template string
		sets                []string
	}{
		{name: "plain", doc: "id: a\nname: a\nbaseImage: docker.io/library/busybox:1\n"},
		{name: "no name", doc: "id: a\nbaseImage: docker.io/library/busybox:1\n"},
		{name: "template flag", doc: "id: a\nname: a\n", template: "nodejs"},
		{name: "flag then set", doc: "id: a\nname: a\n", template: "nodejs", sets: []string{"template=nextjs"}},
		{name: "set over template", doc: "id: a\nname: a\ntemplate: nodejs\n", sets: []string{"resources.tier=dev.large", "environment.FOO=bar"}},
		{name: "bad set", doc: "id: a\nname: a\ntemplate: nodejs\n", sets: []string{"resources.tier=huge"}},
		{name: "unknown template", doc: "id: a\nname: a\n", template: "nope"},
		{name: "bad id", doc: "id: A_B\nname: a\nbaseImage: docker.io/library/busybox:1\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			validated, verr := r.cfg.Templates.ResolveDocument([]byte(c.doc), c.template, c.sets)
			spec, err := podspec.Decode([]byte(c.doc))
			if err != nil {
				t.Fatal(err)
			}
			created, cerr := r.m.resolve(api.CreateRequest{Spec: *spec, Template: c.template, Sets: c.sets})
			if (verr == nil) != (cerr == nil) {
				t.Fatalf("validate: %v; create: %v", verr, cerr)
			}
			if verr != nil {
				if verr.Error() != cerr.Error() {
					t.Fatalf("validate: %v; create: %v", verr, cerr)
				}
				return
			}
			if !reflect.DeepEqual(validated, created) {
				t.Fatalf("validate:\n%+v\ncreate:\n%+v", validated, created)
			}
		})
	}
}
