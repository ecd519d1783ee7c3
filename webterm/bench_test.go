package webterm

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkKeystrokeEcho types one character and waits for its echo, over
// loopback to an in-process server: websocket -> pty -> line discipline ->
// pty -> websocket. Reports the median round trip as p50-ns.
func BenchmarkKeystrokeEcho(b *testing.B) {
	s := startServer(b)
	cl := mustDial(b, s, "")
	cl.waitControl(TypeHello)
	cl.send("echo ready-$((1))\n")
	cl.waitOutput("ready-1")
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		ds = append(ds, cl.echo())
		if i%64 == 63 {
			cl.send("\x15") // ^U keeps the line short
		}
	}
	b.StopTimer()
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds()), "p50-ns")
}

// BenchmarkProcessRSS runs the terminal server as its own process (the
// static test binary, or $PINACLE_WEBTERM_BIN, e.g. a real pinacle-node),
// opens one session and reports the server's VmRSS in kB, idle and with
// the session. b.N is ignored: this is a measurement, not a loop.
func BenchmarkProcessRSS(b *testing.B) {
	bin := os.Getenv("PINACLE_WEBTERM_BIN")
	if bin == "" {
		bin = buildBin(b)
	}
	port := freePort(b)
	cmd := exec.Command(bin, "webterm", "--addr", "127.0.0.1", "--port", strconv.Itoa(port), "--shell", testShell, "--cwd", b.TempDir())
	cmd.Stderr = nil
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ts := &testServer{addr: "127.0.0.1:" + strconv.Itoa(port)}
	var cl *client
	poll(b, 10*time.Second, "server up", func() bool {
		c, _, err := dial(b, ts, "", nil)
		cl = c
		return err == nil
	})
	cl.waitControl(TypeHello)
	cl.send("echo ready-$((1))\n")
	cl.waitOutput("ready-1")
	b.ReportMetric(float64(rssKB(b, cmd.Process.Pid)), "rss-kB/1-session")
	b.ReportMetric(float64(fileSize(b, bin)>>10), "binary-kB")
}

func rssKB(tb testing.TB, pid int) int {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

func fileSize(tb testing.TB, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}
