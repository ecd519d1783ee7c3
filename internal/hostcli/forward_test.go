package hostcli

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func TestParseForward(t *testing.T) {
	for _, tc := range []struct {
		group string
		args  []string
		want  Invocation
	}{
		{"pod", []string{"ls", "-o", "json"}, Invocation{Args: []string{"ls"}, Sub: "ls", Output: "json"}},
		{"pod", []string{"--vm=dev", "get", "web", "-ojson"}, Invocation{Args: []string{"get", "web"}, Sub: "get", VM: "dev", Output: "json"}},
		{"pod", []string{"create", "-f", "x.yaml", "--node-socket", "/s", "--name", "a"}, Invocation{Args: []string{"create", "-f", "x.yaml", "--name", "a"}, Sub: "create", NodeSocket: "/s"}},
		// exec: after the pod ID everything is the command's, -o included.
		{"pod", []string{"exec", "-it", "-e", "A=1", "web", "ls", "-o", "x"}, Invocation{Args: []string{"exec", "-it", "-e", "A=1", "web", "ls", "-o", "x"}, Sub: "exec"}},
		{"pod", []string{"exec", "-o", "json", "web", "--", "ls"}, Invocation{Args: []string{"exec", "web", "--", "ls"}, Sub: "exec", Output: "json"}},
		{"image", []string{"ls", "--node-data-root=/d", "--help"}, Invocation{Args: []string{"ls", "--help"}, Sub: "ls", NodeDataRoot: "/d", Help: true}},
		{"pod", []string{"--", "-o", "json"}, Invocation{Args: []string{"--", "-o", "json"}}},
		// --open is the host's: the browser is on the Mac, not in the VM.
		{"pod", []string{"url", "web", "--open", "--ttl", "1h"}, Invocation{Args: []string{"url", "web", "--ttl", "1h"}, Sub: "url", Open: true}},
	} {
		got, err := ParseForward(tc.group, tc.args)
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		tc.want.Group = tc.group
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%v:\n got %+v\nwant %+v", tc.args, *got, tc.want)
		}
	}
	for _, bad := range [][]string{{"ls", "--vm"}, {"ls", "-o", "toml"}} {
		if _, err := ParseForward("pod", bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%v: want invalid argument, got %v", bad, err)
		}
	}
}

func TestExecWantsTTY(t *testing.T) {
	for args, want := range map[string]bool{
		"exec -it web bash":           true,
		"exec -t web bash":            true,
		"exec --tty web bash":         true,
		"exec -i web bash":            false,
		"exec web top -t":             false,
		"exec -e T=1 web sh":          false,
		"exec -w /tmp -ti web sh":     true,
		"exec -i web -- sh -c tty -t": false,
	} {
		if got := execWantsTTY(strings.Fields(args)); got != want {
			t.Errorf("%q: %v, want %v", args, got, want)
		}
	}
}

func TestParseNodeError(t *testing.T) {
	stderr := "WARN[0000] something from limactl\n{\"code\":\"not_found\",\"message\":\"pod x: not found\"}\n"
	err := ParseNodeError(3, []byte(stderr))
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Code != "not_found" || ne.ExitCode != 3 || ne.Message != "pod x: not found" {
		t.Fatalf("got %#v", err)
	}
	// The class survives the trip: callers can use errors.Is.
	if !errdefs.IsNotFound(err) {
		t.Error("a not_found node error is not errdefs.ErrNotFound")
	}
	err = ParseNodeError(1, []byte("FATA[0000] instance \"x\" does not exist\n"))
	var se *ExitStatusError
	if !errors.As(err, &se) || se.ExitCode != 1 || !strings.Contains(se.Error(), "does not exist") {
		t.Fatalf("got %#v", err)
	}
}

func TestParseInstances(t *testing.T) {
	ndjson := `{"name":"a","status":"Running","cpus":4,"memory":8589934592,"errors":[{}],"config":{"cpus":4}}
{"name":"b","status":"Stopped"}
`
	insts, err := parseInstances([]byte(ndjson))
	if err != nil || len(insts) != 2 || insts[0].Name != "a" || insts[0].Memory != 8<<30 || insts[1].Status != "Stopped" {
		t.Fatalf("%+v %v", insts, err)
	}
	insts, err = parseInstances([]byte(`[{"name":"c","status":"Running"}]`))
	if err != nil || len(insts) != 1 || insts[0].Name != "c" {
		t.Fatalf("array form: %+v %v", insts, err)
	}
	if insts, err := parseInstances(nil); err != nil || insts != nil {
		t.Fatalf("no instances: %+v %v", insts, err)
	}
	if _, err := Find([]Instance{{Name: "a"}}, "b"); !errdefs.IsNotFound(err) {
		t.Errorf("Find of a missing VM: %v", err)
	}
}

func TestNodeCommand(t *testing.T) {
	n := &Node{VM: "pinacle"}
	if got := strings.Join(n.command([]string{"pod", "ls"}), " "); got != "sudo pinacle-node pod ls" {
		t.Errorf("got %q", got)
	}
	n.Env = []string{"PINACLE_SOCKET=/s"}
	if got := strings.Join(n.command([]string{"pod", "ls"}), " "); got != "sudo env PINACLE_SOCKET=/s pinacle-node pod ls" {
		t.Errorf("got %q", got)
	}
}

func TestNewLimactlOptions(t *testing.T) {
	if _, err := NewLimactl(WithPath(" ")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("empty path: %v", err)
	}
	if _, err := NewLimactl(WithLogger(nil)); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("nil logger: %v", err)
	}
}

func TestRenderPodsURLs(t *testing.T) {
	data := `[{"id":"p1","name":"web","state":"running","template":"nextjs","ports":[{"name":"app","internal":3000,"external":30001,"url":"http://127.0.0.1:30001"},{"name":"ide","internal":8080,"external":30002}]}]`
	var b strings.Builder
	if err := RenderPods(&b, []byte(data)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "app=http://127.0.0.1:30001 ide=http://127.0.0.1:30002") {
		t.Errorf("URLs:\n%s", b.String())
	}
}

func TestOpenLink(t *testing.T) {
	var opened string
	f := &Forwarder{Open: func(_ context.Context, u string) error { opened = u; return nil }}
	link := "http://app-p1.localhost:29000/__pinacle/auth?token=v1.a.b"
	if err := f.openLink(context.Background(), []byte(`{"pod":"p1","port":"app","url":"`+link+`"}`)); err != nil || opened != link {
		t.Fatalf("opened %q, %v", opened, err)
	}
	if err := f.openLink(context.Background(), []byte(`{"pod":"p1","revoked":true}`)); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("no link: %v", err)
	}
	var buf strings.Builder
	if err := RenderURL(&buf, []byte(`{"url":"`+link+`"}`)); err != nil || buf.String() != link+"\n" {
		t.Errorf("RenderURL %q, %v", buf.String(), err)
	}
}
