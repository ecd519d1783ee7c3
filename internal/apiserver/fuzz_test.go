package apiserver

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/templates"
)

// resolving is the fake service, except that Create resolves the request
// exactly as the node does (template, --set overrides, validation), so the
// fuzzer reaches the spec decoding and validation behind the handler.
type resolving struct {
	*fakeService
	reg *templates.Registry
}

func (r resolving) Create(ctx context.Context, req api.CreateRequest) (*api.Pod, error) {
	if _, err := r.reg.ResolveRequest(templates.Request{Spec: req.Spec, Template: req.Template, Sets: req.Sets},
		func() string { return "pfuzz" }); err != nil {
		return nil, err
	}
	return r.fakeService.Create(ctx, req)
}

// FuzzCreateRequest sends arbitrary bodies to POST /v1/pods: whatever a
// client sends, the server answers with a classified error or a pod,
// never a panic or a 500.
func FuzzCreateRequest(f *testing.F) {
	for _, seed := range []string{
		`{"spec":{"name":"a","baseImage":"busybox"}}`,
		`{"template":"nextjs","spec":{"name":"web"},"sets":["resources.tier=dev.large"],"wait":true}`,
		`{"spec":{"services":[{"name":"s","command":["x"],"healthCheck":{"type":"http","port":80,"interval":"1s"}}]}}`,
		`{"spec":{"network":{"ports":[{"name":"p","internal":8080}],"bandwidth":{"ingressRate":"1mbit","ingressBurst":"64kbit"}}}}`,
		`{"spec":{"idleTimeout":"5m","resources":{"memoryMb":-1}}}`,
		`{"sets":["network.ports[3].internal=x"]}`,
		`{"spec":1}`, `[]`, `{"spec":{}} trailing`, ``,
	} {
		f.Add([]byte(seed))
	}
	reg, _, err := templates.Load(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	srv, err := NewServer(resolving{newFake(), reg})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/pods", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("body %q: status %d: %s", body, rec.Code, rec.Body)
		}
	})
}
