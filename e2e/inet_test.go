package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// internet is a stand-in for the outside world: a network namespace of
// ours, routed from the host, with one "public" address (in 198.18.0.0/15,
// the benchmarking range) and one private address, each serving HTTP.
type internet struct {
	ns, hostSide, public, private string
}

func newInternet(t *testing.T) *internet {
	t.Helper()
	in := &internet{ns: fmt.Sprintf("pnt-inet-%d", os.Getpid()%100000), hostSide: "198.19.77.1", public: "198.18.77.1", private: "10.254.77.1"}
	hostIf, nsIf := "pnti"+fmt.Sprint(os.Getpid()%10000), "pntn"+fmt.Sprint(os.Getpid()%10000)
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "route", "del", in.public+"/32").Run()
		exec.Command("ip", "route", "del", in.private+"/32").Run()
		exec.Command("ip", "link", "del", hostIf).Run()
		exec.Command("ip", "netns", "pids", in.ns).Run()
		if out, err := exec.Command("ip", "netns", "pids", in.ns).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				exec.Command("kill", "-9", pid).Run()
			}
		}
		exec.Command("ip", "netns", "del", in.ns).Run()
	})
	run("ip", "netns", "add", in.ns)
	run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	run("ip", "link", "set", nsIf, "netns", in.ns)
	run("ip", "addr", "add", in.hostSide+"/30", "dev", hostIf)
	run("ip", "link", "set", hostIf, "up")
	run("ip", "-n", in.ns, "addr", "add", "198.19.77.2/30", "dev", nsIf)
	run("ip", "-n", in.ns, "addr", "add", in.public+"/32", "dev", "lo")
	run("ip", "-n", in.ns, "addr", "add", in.private+"/32", "dev", "lo")
	run("ip", "-n", in.ns, "link", "set", nsIf, "up")
	run("ip", "-n", in.ns, "link", "set", "lo", "up")
	run("ip", "-n", in.ns, "route", "add", "default", "via", in.hostSide)
	run("ip", "route", "add", in.public+"/32", "via", "198.19.77.2")
	run("ip", "route", "add", in.private+"/32", "via", "198.19.77.2")
	www := t.TempDir()
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("internet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("ip", "netns", "exec", in.ns, "busybox", "httpd", "-p", "80", "-h", www)
	poll(t, 10*time.Second, "internet server", func() bool {
		_, err := httpGet("http://"+in.public+"/index.html", 2*time.Second)
		return err == nil
	})
	return in
}
