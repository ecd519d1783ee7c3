package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// LogPath is the current log file of a service: <dir>/<service>.log.
// Rotated files are LogPath + ".1" (newest) .. ".N" (oldest).
func LogPath(dir, service string) string { return filepath.Join(dir, service+".log") }

// rotatingWriter appends to <dir>/<name>.log and rotates it to .1...N
// before a write would take it past max bytes. Rotation happens at a line
// boundary when the chunk has one, so lines are rarely split across files.
type rotatingWriter struct {
	mu    sync.Mutex
	path  string
	max   int64
	files int
	f     *os.File
	size  int64
}

var _ io.WriteCloser = (*rotatingWriter)(nil)

func newRotatingWriter(dir, name string, max int64, files int) (*rotatingWriter, error) {
	w := &rotatingWriter{path: LogPath(dir, name), max: max, files: files}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *rotatingWriter) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("log %s: %w", w.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log %s: %w", w.path, err)
	}
	w.f, w.size = f, st.Size()
	return nil
}

func (w *rotatingWriter) rotate() error {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	// Shift .N-1 -> .N ... .1 -> .2, then the live file -> .1. The oldest
	// is overwritten by the rename, so at most files rotated files remain.
	for i := w.files - 1; i >= 1; i-- {
		os.Rename(w.path+"."+strconv.Itoa(i), w.path+"."+strconv.Itoa(i+1))
	}
	if err := os.Rename(w.path, w.path+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("log rotate %s: %w", w.path, err)
	}
	return w.open()
}

// Write never returns a short write to a healthy caller: the log pipe
// reader must keep draining or the service would block on a full pipe.
func (w *rotatingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for len(p) > 0 {
		if w.f == nil {
			if err := w.open(); err != nil {
				return n, err
			}
		}
		room := w.max - w.size
		if int64(len(p)) <= room {
			m, err := w.f.Write(p)
			w.size += int64(m)
			return n + m, err
		}
		chunk := p
		if room > 0 {
			if i := bytes.LastIndexByte(p[:room], '\n'); i >= 0 {
				chunk = p[:i+1]
			} else if w.size == 0 {
				chunk = p[:room] // a line longer than the cap: split it
			} else {
				chunk = nil // start the line in a fresh file
			}
		} else {
			chunk = nil
		}
		if len(chunk) > 0 {
			m, err := w.f.Write(chunk)
			w.size += int64(m)
			n += m
			p = p[m:]
			if err != nil {
				return n, err
			}
		}
		if err := w.rotate(); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (w *rotatingWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// eventf writes a supervisor line into the service log, so a reader of the
// log sees starts, exits and restarts in order with the service's output.
func (w *rotatingWriter) eventf(format string, args ...any) {
	line := fmt.Sprintf("[pinacle %s] "+format+"\n", append([]any{time.Now().UTC().Format(time.RFC3339Nano)}, args...)...)
	w.Write([]byte(line))
}

// TailLogs returns the last n lines of a service's log, reading back
// through rotated files as needed. n <= 0 returns every line kept.
func TailLogs(dir, service string, n int) ([]string, error) {
	if err := errdefs.ValidateID("service", service); err != nil {
		return nil, err
	}
	base := LogPath(dir, service)
	paths := []string{base}
	for i := 1; ; i++ {
		p := base + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		paths = append(paths, p)
	}
	var out []string // collected newest file first, each file's lines in order
	found := false
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("logs %s: %w", service, err)
		}
		found = true
		lines := splitLines(b)
		if n > 0 && len(out)+len(lines) >= n {
			out = append(lines[len(lines)-(n-len(out)):], out...)
			return out, nil
		}
		out = append(lines, out...)
	}
	if !found {
		return nil, fmt.Errorf("logs of service %s in %s: %w", service, dir, errdefs.ErrNotFound)
	}
	return out, nil
}

func splitLines(b []byte) []string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), len(b)+1)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// FollowPollInterval is how often FollowLogs looks for new data. Polling,
// not inotify: the files are written inside gVisor and inotify on the host
// side of the bind mount is not guaranteed to see writes made through the gofer.
var FollowPollInterval = 100 * time.Millisecond

// FollowLogs copies a service's current log to w from its start and then
// keeps copying what is appended, across rotations, until ctx is done
// (it returns nil then). A rotation is noticed when the path names a new
// file; the old file is drained to its end first, so no line is lost
// unless it was rotated away twice between two polls.
func FollowLogs(ctx context.Context, dir, service string, w io.Writer) error {
	return FollowLogsFrom(ctx, dir, service, 0, w)
}

// FollowLogsFrom is FollowLogs starting at byte offset of the current log
// file, so a caller that has printed the tail (read after measuring the
// file) goes on without repeating it. If the file is shorter than offset
// (it rotated meanwhile), it starts from the beginning of the new one.
func FollowLogsFrom(ctx context.Context, dir, service string, offset int64, w io.Writer) error {
	if err := errdefs.ValidateID("service", service); err != nil {
		return err
	}
	path := LogPath(dir, service)
	var f *os.File
	buf := make([]byte, 32<<10)
	drain := func() error {
		for {
			n, err := f.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return werr
				}
			}
			if err == io.EOF || n == 0 {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	t := time.NewTicker(FollowPollInterval)
	defer t.Stop()
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		if f == nil {
			nf, err := os.Open(path)
			if err == nil {
				f = nf
				if fi, err := f.Stat(); offset > 0 && err == nil && fi.Size() >= offset {
					if _, err := f.Seek(offset, io.SeekStart); err != nil {
						return fmt.Errorf("follow logs %s: %w", service, err)
					}
				}
				offset = 0 // only the first file starts part way
			} else if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("follow logs %s: %w", service, err)
			}
		}
		if f != nil {
			if err := drain(); err != nil {
				return fmt.Errorf("follow logs %s: %w", service, err)
			}
			if rotated(f, path) {
				// Drain once more: the writer may have appended before renaming.
				if err := drain(); err != nil {
					return fmt.Errorf("follow logs %s: %w", service, err)
				}
				// If it rotated more than once since the last poll, the
				// files between ours and the live one are read whole.
				missed := missedRotations(f, path)
				f.Close()
				f = nil
				for _, p := range missed {
					if f, _ = os.Open(p); f != nil {
						err := drain()
						f.Close()
						f = nil
						if err != nil {
							return fmt.Errorf("follow logs %s: %w", service, err)
						}
					}
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// missedRotations returns the rotated files newer than f, oldest first:
// when f is now <path>.3, those are .2 and .1.
func missedRotations(f *os.File, path string) []string {
	a, err := f.Stat()
	if err != nil {
		return nil
	}
	var newer []string
	for i := 1; ; i++ {
		p := path + "." + strconv.Itoa(i)
		b, err := os.Stat(p)
		if err != nil {
			return nil // ours is gone (rotated out): nothing reliable to add
		}
		if os.SameFile(a, b) {
			slices.Reverse(newer)
			return newer
		}
		newer = append(newer, p)
	}
}

// rotated reports whether path no longer names the open file f, or f was
// truncated under us.
func rotated(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return true
	}
	b, err := os.Stat(path)
	if err != nil {
		return false // between the rename and the create: keep the old one
	}
	if !os.SameFile(a, b) {
		return true
	}
	if off, err := f.Seek(0, io.SeekCurrent); err == nil && a.Size() < off {
		return true
	}
	return false
}
