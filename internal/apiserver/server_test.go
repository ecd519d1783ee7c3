package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/podspec"
)

// testServer runs a real server on a unix socket in a temp dir.
type testServer struct {
	fake   *fakeService
	client *api.Client
	path   string
	raw    *http.Client // bypasses the client's own ID checks
}

func startServer(t testing.TB, opts ...Option) *testServer {
	t.Helper()
	fake := newFake()
	// Unix socket paths are limited to 108 bytes; t.TempDir can be long.
	dir := t.TempDir()
	path := filepath.Join(dir, "node.sock")
	if len(path) > 100 {
		t.Fatalf("socket path too long: %s", path)
	}
	opts = append([]Option{WithLogger(slog.New(slog.NewTextHandler(newTestWriter(t), nil)))}, opts...)
	srv, err := NewServer(fake, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ListenUnix(path, WithSocketGroup(""))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	c := api.NewClient(path)
	t.Cleanup(func() { c.Close() })
	raw := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
	return &testServer{fake: fake, client: c, path: path, raw: raw}
}

// testWriter sends the server's log to t.Log while the test runs. A
// request can finish (and be logged) after the test returned, and t.Log
// then is a race inside package testing, so later lines are dropped.
type testWriter struct {
	t    testing.TB
	mu   *sync.Mutex
	done *bool
}

func newTestWriter(t testing.TB) testWriter {
	w := testWriter{t: t, mu: new(sync.Mutex), done: new(bool)}
	t.Cleanup(func() {
		w.mu.Lock()
		*w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !*w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// rawDo sends a request without the client's checks and decodes an error body.
func (ts *testServer) rawDo(t *testing.T, method, path, body string) (int, api.ErrorBody) {
	t.Helper()
	req, err := http.NewRequest(method, "http://x"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.raw.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb api.ErrorBody
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &eb); err != nil {
			t.Fatalf("%s %s: error body %q is not JSON: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, eb
}

func mustCreate(t testing.TB, c *api.Client, name string) *api.Pod {
	t.Helper()
	p, err := c.Create(context.Background(), api.CreateRequest{Spec: podspec.Pod{Name: name, BaseImage: "busybox"}, Template: "custom", Wait: true})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return p
}

func TestRoutes(t *testing.T) {
	ts := startServer(t, WithVersion("1.2.3"))
	c := ts.client
	ctx := context.Background()

	if err := c.Ping(ctx); err != nil {
		t.Fatalf("healthz: %v", err)
	}
	v, err := c.Version(ctx)
	if err != nil || v.Version != "1.2.3" || v.APIVersion != "v1" {
		t.Fatalf("version = %+v, %v", v, err)
	}
	ps, err := c.List(ctx)
	if err != nil || len(ps) != 0 {
		t.Fatalf("empty list = %v, %v", ps, err)
	}
	p := mustCreate(t, c, "web")
	if p.State != lifecycle.Running || p.ID == "" || p.Image != "busybox" || p.Template != "custom" {
		t.Fatalf("created pod = %+v", p)
	}
	noWait, err := c.Create(ctx, api.CreateRequest{Spec: podspec.Pod{Name: "later"}})
	if err != nil || noWait.State != lifecycle.Pending {
		t.Fatalf("create without wait = %+v, %v", noWait, err)
	}
	for _, key := range []string{p.ID, "web"} {
		got, err := c.Get(ctx, key)
		if err != nil || got.ID != p.ID || len(got.Ports) != 1 || got.Ports[0].External != 30001 {
			t.Fatalf("get %s = %+v, %v", key, got, err)
		}
	}
	ps, err = c.List(ctx)
	if err != nil || len(ps) != 2 {
		t.Fatalf("list = %d pods, %v", len(ps), err)
	}
	if got, err := c.Stop(ctx, "web"); err != nil || got.State != lifecycle.Stopped {
		t.Fatalf("stop = %+v, %v", got, err)
	}
	if got, err := c.Start(ctx, "web"); err != nil || got.State != lifecycle.Running {
		t.Fatalf("start = %+v, %v", got, err)
	}
	if got, err := c.Hibernate(ctx, "web"); err != nil || got.State != lifecycle.Hibernated {
		t.Fatalf("hibernate = %+v, %v", got, err)
	}
	if got, err := c.Wake(ctx, "web"); err != nil || got.State != lifecycle.Running {
		t.Fatalf("wake = %+v, %v", got, err)
	}
	if _, err := c.Wake(ctx, "nope"); !errdefs.IsNotFound(err) {
		t.Fatalf("wake of a missing pod = %v, want not found", err)
	}
	if m, err := c.Metrics(ctx, "web"); err != nil || m.PodID != p.ID || m.Sandbox == nil || m.Sandbox.Pids != 3 {
		t.Fatalf("metrics = %+v, %v", m, err)
	}
	if h, err := c.Health(ctx, "web"); err != nil || !h.Healthy || h.PodID != p.ID {
		t.Fatalf("health = %+v, %v", h, err)
	}
	if st, err := c.ServiceControl(ctx, "web", "ls", ""); err != nil || len(st.Services) != 1 || st.Services[0].Name != "app" {
		t.Fatalf("services ls = %+v, %v", st, err)
	}
	if st, err := c.ServiceControl(ctx, "web", "restart", "app"); err != nil || st.Services[0].Restarts != 1 {
		t.Fatalf("service restart = %+v, %v", st, err)
	}
	if _, err := c.ServiceControl(ctx, "web", "restart", "nope"); !errdefs.IsNotFound(err) {
		t.Fatalf("restart of a missing service: %v, want not found", err)
	}
	var buf bytes.Buffer
	if err := c.Logs(ctx, "web", "app", 2, false, &buf); err != nil || buf.String() != "two\nthree\n" {
		t.Fatalf("logs --tail 2 = %q, %v", buf.String(), err)
	}
	var evs []api.Event
	if err := c.Events(ctx, p.ID, 0, false, func(ev api.Event) error { evs = append(evs, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	var states []lifecycle.State
	for _, ev := range evs {
		if ev.PodID != p.ID {
			t.Fatalf("pod events include another pod's: %+v", ev)
		}
		states = append(states, ev.To)
	}
	want := []lifecycle.State{lifecycle.Pending, lifecycle.Provisioning, lifecycle.Running, lifecycle.Stopped, lifecycle.Running, lifecycle.Hibernated, lifecycle.Running}
	if !slices.Equal(states, want) {
		t.Fatalf("event states = %v, want %v", states, want)
	}
	// since skips what the caller has seen; /v1/events has every pod's.
	var all []api.Event
	if err := c.Events(ctx, "", evs[1].Seq, false, func(ev api.Event) error { all = append(all, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || all[0].Seq <= evs[1].Seq || !slices.ContainsFunc(all, func(e api.Event) bool { return e.PodID == noWait.ID }) {
		t.Fatalf("all events since %d = %+v", evs[1].Seq, all)
	}
	if err := c.Delete(ctx, "web"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.Get(ctx, p.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestErrorMapping(t *testing.T) {
	ts := startServer(t)
	c := ts.client
	ctx := context.Background()
	mustCreate(t, c, "web")

	check := func(name string, err error, class error, status int, code string) *api.Error {
		t.Helper()
		var ae *api.Error
		if !errors.As(err, &ae) {
			t.Fatalf("%s: %T %v is not an *api.Error", name, err, err)
		}
		if !errors.Is(err, class) || ae.Status != status || ae.Body.Code != code {
			t.Fatalf("%s: got %d %q (%v), want %d %q", name, ae.Status, ae.Body.Code, err, status, code)
		}
		if c := errdefs.Classify(err); c.Code != code {
			t.Fatalf("%s: classified as %s, want %s", name, c.Code, code)
		}
		return ae
	}
	_, err := c.Get(ctx, "missing")
	ae := check("get missing", err, errdefs.ErrNotFound, 404, "not_found")
	if ae.Error() != "pod missing: not found" {
		t.Fatalf("message not kept: %q", ae.Error())
	}
	_, err = c.Create(ctx, api.CreateRequest{Spec: podspec.Pod{Name: "web"}})
	check("create duplicate", err, errdefs.ErrAlreadyExists, 409, "already_exists")

	ts.fake.mu.Lock()
	for _, p := range ts.fake.pods {
		p.State = lifecycle.Failed
	}
	ts.fake.mu.Unlock()
	_, err = c.Start(ctx, "web")
	check("start failed pod", err, errdefs.ErrConflict, 409, "conflict")

	_, err = c.Create(ctx, api.CreateRequest{Spec: podspec.Pod{Name: "invalid"}})
	ae = check("create invalid", err, errdefs.ErrInvalidArgument, 400, "invalid_argument")
	if len(ae.Body.Fields) != 2 || ae.Body.Fields[0].Field != "resources.tier" || ae.Body.Fields[1].Field != "network.ports[0].internal" {
		t.Fatalf("field errors = %+v", ae.Body.Fields)
	}
	var ve *podspec.ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 2 {
		t.Fatalf("validation error not rebuilt: %v", err)
	}
	if !strings.Contains(err.Error(), "2 errors") {
		t.Fatalf("message = %q", err.Error())
	}

	// Unknown endpoints and methods are JSON errors too.
	if st, eb := ts.rawDo(t, "GET", "/v2/pods", ""); st != 404 || eb.Code != "not_found" {
		t.Fatalf("unknown path: %d %+v", st, eb)
	}
	if st, eb := ts.rawDo(t, "PUT", "/v1/pods/web", ""); st != http.StatusMethodNotAllowed || eb.Code != "invalid_argument" {
		t.Fatalf("wrong method: %d %+v", st, eb)
	}
	if st, eb := ts.rawDo(t, "GET", "/v1/pods/web/events?since=-1", ""); st != 400 || eb.Field != "since" {
		t.Fatalf("bad since: %d %+v", st, eb)
	}
	if st, eb := ts.rawDo(t, "GET", "/v1/pods/web/logs?tail=x", ""); st != 400 || eb.Field != "tail" {
		t.Fatalf("bad tail: %d %+v", st, eb)
	}
	if st, eb := ts.rawDo(t, "POST", "/v1/pods/web/services/app/explode", ""); st != 400 || eb.Field != "op" {
		t.Fatalf("bad op: %d %+v", st, eb)
	}
}

func TestRequestBodyChecks(t *testing.T) {
	ts := startServer(t, WithMaxBodyBytes(64<<10))
	big := `{"spec":{"name":"x","environment":{"A":"` + strings.Repeat("a", 100<<10) + `"}}}`
	st, eb := ts.rawDo(t, "POST", "/v1/pods", big)
	if st != 400 || eb.Code != "invalid_argument" || !strings.Contains(eb.Message, "larger than 65536 bytes") {
		t.Fatalf("oversized body: %d %+v", st, eb)
	}
	st, eb = ts.rawDo(t, "POST", "/v1/pods", `{"spec":{"name":"x"},"wiat":true}`)
	if st != 400 || !strings.Contains(eb.Message, `unknown field "wiat"`) {
		t.Fatalf("unknown field: %d %+v", st, eb)
	}
	st, eb = ts.rawDo(t, "POST", "/v1/pods", `{"spec":{"name":"x","extra":1}}`)
	if st != 400 || !strings.Contains(eb.Message, `unknown field "extra"`) {
		t.Fatalf("unknown nested field: %d %+v", st, eb)
	}
	st, eb = ts.rawDo(t, "POST", "/v1/pods", `{"spec":{"name":1}}`)
	if st != 400 || eb.Field != "spec.name" {
		t.Fatalf("wrong type: %d %+v", st, eb)
	}
	st, eb = ts.rawDo(t, "POST", "/v1/pods", ``)
	if st != 400 || !strings.Contains(eb.Message, "empty") {
		t.Fatalf("empty body: %d %+v", st, eb)
	}
	st, eb = ts.rawDo(t, "POST", "/v1/pods", `{"spec":{}} {"spec":{}}`)
	if st != 400 || !strings.Contains(eb.Message, "trailing") {
		t.Fatalf("two objects: %d %+v", st, eb)
	}
	if ids := ts.fake.seenIDs(); len(ids) != 0 {
		t.Fatalf("bad bodies reached the service: %v", ids)
	}
	if len(ts.fake.pods) != 0 {
		t.Fatalf("a pod was created from a bad body")
	}
}

func TestInvalidIDsStopAtTheAPI(t *testing.T) {
	ts := startServer(t)
	mustCreate(t, ts.client, "web")
	before := len(ts.fake.seenIDs())
	for _, tc := range []struct{ method, path, field string }{
		{"GET", "/v1/pods/UPPER", "id"},
		{"GET", "/v1/pods/..", ""},
		{"GET", "/v1/pods/%2E%2E%2Fetc", ""},
		{"GET", "/v1//pods", ""},
		{"GET", "/v1/pods/a%2Fb", "id"},
		{"DELETE", "/v1/pods/-rf", "id"},
		{"POST", "/v1/pods/.hidden/start", "id"},
		{"GET", "/v1/pods/" + strings.Repeat("a", 64) + "/logs", "id"},
		{"GET", "/v1/pods/web/logs?service=..%2Fx", "service"},
		{"POST", "/v1/pods/web/services/..%2Fx/restart", ""},
		{"POST", "/v1/pods/web/services/Bad/restart", "name"},
		{"POST", "/v1/pods", "template"},
	} {
		body := ""
		if tc.path == "/v1/pods" {
			body = `{"spec":{"name":"x"},"template":"../../etc"}`
		}
		st, eb := ts.rawDo(t, tc.method, tc.path, body)
		if st != 400 || eb.Code != "invalid_argument" || eb.Field != tc.field {
			t.Errorf("%s %s: %d %+v, want 400 invalid_argument on %s", tc.method, tc.path, st, eb, tc.field)
		}
	}
	if ids := ts.fake.seenIDs(); len(ids) != before {
		t.Fatalf("invalid IDs reached the service: %v", ids[before:])
	}
	// The client refuses them locally with the same class.
	if _, err := ts.client.Get(context.Background(), "../x"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("client get ../x: %v", err)
	}
}

func TestEventsFollowEndsOnCancel(t *testing.T) {
	ts := startServer(t)
	p := mustCreate(t, ts.client, "web")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan api.Event, 16)
	errc := make(chan error, 1)
	go func() {
		errc <- ts.client.Events(ctx, p.ID, 0, true, func(ev api.Event) error { got <- ev; return nil })
	}()
	for range 3 { // pending, provisioning, running
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("no history events")
		}
	}
	if _, err := ts.client.Stop(context.Background(), p.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev.To != lifecycle.Stopped {
			t.Fatalf("followed event = %+v, want -> stopped", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("followed event did not arrive")
	}
	drain(ts.fake.streamEnded)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Events after cancel: %v", err)
	}
	// The server side ends too: the service's Events returns.
	waitEnded(t, ts.fake.streamEnded)

	// A missing pod is a 404 before the stream starts.
	err := ts.client.Events(context.Background(), "nope", 0, true, func(api.Event) error { return nil })
	if !errdefs.IsNotFound(err) {
		t.Fatalf("events of a missing pod: %v", err)
	}
}

func TestLogs(t *testing.T) {
	ts := startServer(t)
	mustCreate(t, ts.client, "web")
	ctx := context.Background()

	var buf bytes.Buffer
	if err := ts.client.Logs(ctx, "web", "", -1, false, &buf); err != nil || buf.String() != "one\ntwo\nthree\n" {
		t.Fatalf("logs = %q, %v", buf.String(), err)
	}
	if err := ts.client.Logs(ctx, "web", "nope", -1, false, io.Discard); !errdefs.IsNotFound(err) {
		t.Fatalf("logs of a missing service: %v", err)
	}
	// An error after output started comes through the trailer.
	buf.Reset()
	err := ts.client.Logs(ctx, "web", "broken", -1, false, &buf)
	if !errors.Is(err, errdefs.ErrUnavailable) || buf.String() != "partial\n" || !strings.Contains(err.Error(), "vanished") {
		t.Fatalf("logs of broken = %q, %v", buf.String(), err)
	}

	// Follow streams until the client cancels; then the server's Logs ends.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	drain(ts.fake.streamEnded)
	go func() { errc <- ts.client.Logs(fctx, "web", "app", 1, true, pw); pw.Close() }()
	lines := make(chan string, 16)
	go func() {
		b := make([]byte, 4096)
		var acc string
		for {
			n, err := pr.Read(b)
			acc += string(b[:n])
			for {
				i := strings.IndexByte(acc, '\n')
				if i < 0 {
					break
				}
				lines <- acc[:i]
				acc = acc[i+1:]
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	want := []string{"three", "tick 0", "tick 1"}
	for _, w := range want {
		select {
		case l := <-lines:
			if l != w {
				t.Fatalf("followed line %q, want %q", l, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no line %q", w)
		}
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Logs after cancel: %v", err)
	}
	waitEnded(t, ts.fake.streamEnded)
}

func drain(c chan error) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// waitEnded waits for a service-side stream to return.
func waitEnded(t *testing.T, c chan error) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the service-side stream did not end")
	}
	return nil
}

func TestServeShutdownEndsStreams(t *testing.T) {
	fake := newFake()
	path := filepath.Join(t.TempDir(), "s.sock")
	srv, err := NewServer(fake)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ListenUnix(path, WithSocketGroup(""))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	c := api.NewClient(path)
	defer c.Close()
	mustCreate(t, c, "web")
	errc := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		var once bool
		errc <- c.Events(context.Background(), "", 0, true, func(api.Event) error {
			if !once {
				once = true
				close(started)
			}
			return nil
		})
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return: the follow stream held the shutdown")
	}
	if err := <-errc; err != nil {
		t.Logf("follower ended with %v", err)
	}
	if _, err := net.Dial("unix", path); err == nil {
		t.Fatal("socket still accepts after shutdown")
	}
}
