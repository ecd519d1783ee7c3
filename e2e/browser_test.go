package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// browser is a headless Chromium driven over its DevTools protocol, one
// tab, for one test.
type browser struct {
	t   *testing.T
	ctx context.Context // the tab's; every action derives a deadline from it
}

// newBrowser starts headless Chromium (Debian's chromium, installed by
// hack/setup.sh). Without it the test is skipped, unless CI is set: then a
// missing browser is a failure. If the test fails, a screenshot of the
// page is kept (t.ArtifactDir with go test -artifacts, else os.TempDir).
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		testenv.Missing(t, "chromium is not installed (hack/setup.sh installs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root, in a test: Chromium refuses its sandbox as root
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(1000, 700),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); acancel() })
	// The first Run starts the browser, on ctx itself: a deadline here
	// would end the browser with it.
	start := make(chan error, 1)
	go func() { start <- chromedp.Do(ctx) }()
	select {
	case err := <-start:
		if err != nil {
			t.Fatalf("starting %s: %v", path, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start within 60s", path)
	}
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(b.screenshotOnFailure) // runs before the browser is closed
	return b
}

// run runs steps with a deadline.
func (b *browser) run(timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// get runs an action that gives a value, with a deadline.
func get[T any](b *browser, timeout time.Duration, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	return chromedp.Run(ctx, a)
}

func (b *browser) must(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := b.run(30*time.Second, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) screenshotOnFailure() {
	if !b.t.Failed() {
		return
	}
	png, err := get(b, 10*time.Second, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Logf("screenshot: %v", err)
		return
	}
	dir := b.t.ArtifactDir()
	if f := flag.Lookup("test.artifacts"); f == nil || f.Value.String() != "true" {
		dir = os.TempDir() // ArtifactDir is removed after the test without -artifacts
	}
	name := filepath.Join(dir, fmt.Sprintf("%s-%d.png", strings.ReplaceAll(b.t.Name(), "/", "_"), time.Now().Unix()))
	if err := os.WriteFile(name, png, 0o644); err != nil {
		b.t.Logf("screenshot: %v", err)
		return
	}
	b.t.Logf("screenshot of the page at the failure: %s", name)
}

// terminalJS reads the web terminal's screen from xterm.js's DOM renderer:
// one div per row under .xterm-rows, spaces as no-break spaces.
const terminalJS = `Array.from(document.querySelectorAll('.xterm-rows > div')).map(d => d.textContent.replace(/\u00a0/g, ' ')).join('\n')`

// screen is the terminal's visible text.
func (b *browser) screen() string {
	s, err := get(b, 10*time.Second, chromedp.Evaluate[string](terminalJS))
	if err != nil {
		b.t.Logf("reading the terminal: %v", err)
	}
	return s
}

// typeLine types line and Enter into the terminal, as a user's keys: a
// key down (with its text) and up per character. (chromedp's KeyEvent and
// SendKeys also send a "char" event, which xterm.js takes as a second
// keypress: every character would arrive twice.)
func (b *browser) typeLine(line string) error {
	keys := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, r := range line {
			down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: string(r), Text: string(r), UnmodifiedText: string(r)}
			if err := key(ctx, t, down); err != nil {
				return err
			}
		}
		return key(ctx, t, input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, Text: "\r"})
	})
	return b.run(20*time.Second, chromedp.Focus(chromedp.CSS(".xterm-helper-textarea")), keys)
}

// key sends a key down and, for it, the key up.
func key(ctx context.Context, t *chromedp.Target, down input.DispatchKeyEventParams) error {
	if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, down); err != nil {
		return err
	}
	up := down
	up.Type, up.Text, up.UnmodifiedText = input.DispatchKeyEventTypeKeyUp, "", ""
	_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, up)
	return err
}

// waitScreen polls the terminal until re matches it, and returns the match.
func (b *browser) waitScreen(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		s := b.screen()
		if m := re.FindStringSubmatch(s); m != nil {
			return m, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no /%s/ on the terminal within %s; it shows:\n%s", re, timeout, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rowsOnPage is how many rows xterm.js lays out in the page.
func (b *browser) rowsOnPage() int {
	n, err := get(b, 10*time.Second, chromedp.Evaluate[int](`document.querySelectorAll('.xterm-rows > div').length`))
	if err != nil {
		b.t.Fatalf("counting rows: %v", err)
	}
	return n
}

// shellSize asks the pod's shell for its terminal size (stty size) through
// the page and returns rows, cols. n tells this answer from earlier ones.
func (b *browser) shellSize(t *testing.T, n int) (int, int) {
	t.Helper()
	if err := b.typeLine(fmt.Sprintf("echo SZ%d:$(stty size):ZS", n)); err != nil {
		t.Fatal(err)
	}
	m, err := b.waitScreen(regexp.MustCompile(fmt.Sprintf(`SZ%d:(\d+) (\d+):ZS`, n)), 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := strconv.Atoi(m[1])
	cols, _ := strconv.Atoi(m[2])
	return rows, cols
}

// TestBrowserMinimalTemplate opens a real pod's pages in headless Chromium:
// the web terminal (type a command, read its output from the page; resize
// the window and see the shell's size follow; reconnect after the
// terminal service restarts) and the app page.
func TestBrowserMinimalTemplate(t *testing.T) {
	requireNode(t)
	b := newBrowser(t)
	d := startDaemon(t)
	if r := d.cli("pod", "create", "--template", "minimal", "--name", "mini", "-o", "json"); r.code != 0 {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	p, _ := d.get("mini")
	urls := map[string]string{}
	for _, port := range p.Ports {
		urls[port.Name] = port.URL
	}
	if urls["app"] == "" || urls["terminal"] == "" {
		t.Fatalf("pod ports %+v: want app and terminal", p.Ports)
	}

	// The app page.
	b.must("app page", chromedp.Navigate(urls["app"]+"/"))
	body, err := get(b, 10*time.Second, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatalf("app page: %v", err)
	}
	if !strings.Contains(body, "Hello from pinacle") {
		t.Errorf("app page at %s shows %q, want Hello from pinacle", urls["app"], body)
	}

	// The terminal: a shell in the pod, its output on the page. Its raw
	// port wants the pod's token, so the browser goes the user's way: a
	// signed link through the gateway, which sets the cookie, redirects to
	// http://terminal-<pod>.localhost:<gateway port>/ and adds the token.
	link := d.podURL("mini", "terminal").URL
	b.must("terminal page", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(".xterm-rows")))
	if _, err := b.waitScreen(regexp.MustCompile(`[#$] *$|[#$] *\n`), 20*time.Second); err != nil {
		t.Fatalf("no shell prompt: %v", err)
	}
	if err := b.typeLine("echo pod=$(hostname) sum=$((6*7)) cwd=$(pwd)"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.waitScreen(regexp.MustCompile(`pod=mini sum=42 cwd=/workspace`), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if title, _ := get(b, 10*time.Second, chromedp.Title()); !strings.Contains(title, "terminal") {
		t.Errorf("page title %q", title)
	}

	// The shell's size is the page's, and follows the window.
	rows, cols := b.shellSize(t, 1)
	if want := b.rowsOnPage(); rows != want || cols < 40 {
		t.Errorf("stty size %d %d in a page of %d rows", rows, cols, want)
	}
	b.must("resize", chromedp.EmulateViewport(640, 360))
	poll(t, 20*time.Second, "the page to lay out fewer rows", func() bool { return b.rowsOnPage() < rows })
	rows2, cols2 := b.shellSize(t, 2)
	if want := b.rowsOnPage(); rows2 != want || cols2 >= cols {
		t.Errorf("after shrinking the window: stty size %d %d, want %d rows (the page's) and fewer than %d columns", rows2, cols2, want, cols)
	}
	t.Logf("terminal size %dx%d, after resize %dx%d", cols, rows, cols2, rows2)

	// The terminal service restarts: the page says so, and "New shell"
	// connects to the new one.
	if r := d.cli("pod", "service", "restart", "mini", "web-terminal"); r.code != 0 {
		t.Fatalf("service restart: exit %d: %s", r.code, r.stderr)
	}
	var status string
	poll(t, 30*time.Second, "the page to show the disconnect", func() bool {
		status, _ = get(b, 5*time.Second, chromedp.Text(chromedp.CSS("#status-text")))
		return strings.Contains(status, "Disconnected") || strings.Contains(status, "exited")
	})
	t.Logf("after the restart the page says: %q", status)
	reconnected := regexp.MustCompile(`back=(\d+)`)
	deadline := time.Now().Add(60 * time.Second)
	for n := 1; ; n++ {
		// The service may not listen yet: click, try a command, and click
		// again while the page shows the disconnect.
		if err := b.run(10*time.Second, chromedp.Click(chromedp.CSS("#reconnect"))); err != nil {
			t.Fatalf("clicking New shell: %v", err)
		}
		_, _ = b.waitScreen(regexp.MustCompile(`[#$] *$|[#$] *\n`), 5*time.Second)
		if err := b.typeLine("echo back=$((1000+" + strconv.Itoa(n) + "))"); err != nil {
			t.Fatal(err)
		}
		if m, err := b.waitScreen(reconnected, 5*time.Second); err == nil {
			t.Logf("reconnected after %d tries: %s", n, m[0])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no working shell after the service restart within 60s; terminal:\n%s", b.screen())
		}
	}
}
