// Command testreport reads `go test -json` on stdin, prints what plain
// `go test` would (package results, and the output of failed tests), and
// ends with a count of passed, failed and skipped tests and the reason of
// every skip, so a skipped prerequisite can never hide in a green run.
// A test's line carrying "FIGURE " (a measured figure) is printed whether
// the test passes or fails.
//
//	go test -json ./... | go run ./hack/testreport
//
// It exits non-zero when a test or a package failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type report struct {
	out     io.Writer
	pass    int
	fail    int
	skip    map[string]string   // "pkg.Test" -> reason
	buf     map[string][]string // output of running tests
	failed  bool
	skipped []string
}

func main() {
	r := &report{out: os.Stdout, skip: map[string]string{}, buf: map[string][]string{}}
	if err := r.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	r.summary()
	if r.failed || r.fail > 0 {
		os.Exit(1)
	}
}

func (r *report) read(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			fmt.Fprintln(r.out, string(line)) // not an event: pass it through
			continue
		}
		r.handle(e)
	}
	return sc.Err()
}

func (r *report) handle(e event) {
	key := e.Package + "." + e.Test
	switch {
	case e.Action == "build-output":
		fmt.Fprint(r.out, e.Output)
	case e.Action == "build-fail":
		r.failed = true
	case e.Test == "":
		if e.Action == "output" && e.Output != "PASS\n" {
			fmt.Fprint(r.out, e.Output) // ok/FAIL lines, package-level messages
		} else if e.Action == "fail" {
			r.failed = true
		}
	case e.Action == "output" && strings.Contains(e.Output, "FIGURE "):
		fmt.Fprint(r.out, e.Output) // figures are the point of a passing run too
	case e.Action == "output":
		r.buf[key] = append(r.buf[key], e.Output)
	case e.Action == "pass":
		r.pass++
		delete(r.buf, key)
	case e.Action == "fail":
		r.fail++
		for _, l := range r.buf[key] {
			fmt.Fprint(r.out, l)
		}
		delete(r.buf, key)
	case e.Action == "skip":
		r.skipped = append(r.skipped, key)
		r.skip[key] = skipReason(r.buf[key])
		delete(r.buf, key)
	}
}

// skipReason is what the test said when it skipped: its output without
// the "=== RUN" and "--- SKIP" framing.
func skipReason(lines []string) string {
	var keep []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		keep = append(keep, t)
	}
	if len(keep) == 0 {
		return "(no reason given)"
	}
	return strings.Join(keep, " ")
}

func (r *report) summary() {
	sort.Strings(r.skipped)
	if len(r.skipped) > 0 {
		fmt.Fprintf(r.out, "\nskipped tests (%d):\n", len(r.skipped))
		for _, k := range r.skipped {
			fmt.Fprintf(r.out, "  %s: %s\n", strings.TrimPrefix(k, "github.com/pinacle/pinacle-node/"), r.skip[k])
		}
	}
	fmt.Fprintf(r.out, "\n%d passed, %d failed, %d skipped\n", r.pass, r.fail, len(r.skipped))
}
