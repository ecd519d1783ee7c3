package api

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// ExecProtocol is the Upgrade token of the exec stream.
const ExecProtocol = "pinacle-exec/1"

// FrameType is the first byte of an exec frame.
type FrameType byte

// Frame types of the exec protocol (docs/api.md). A frame is 1 byte of
// type, a 4-byte big-endian payload length and the payload.
const (
	FrameStdin      FrameType = 1 // client -> server: bytes for the process's stdin
	FrameStdinClose FrameType = 2 // client -> server: stdin reached EOF
	FrameStdout     FrameType = 3 // server -> client
	FrameStderr     FrameType = 4 // server -> client (never sent with a tty)
	FrameResize     FrameType = 5 // client -> server: JSON Size
	FrameExit       FrameType = 6 // server -> client: JSON {"code": N}; the last frame
	FrameError      FrameType = 7 // server -> client: JSON ErrorBody; the last frame
)

func (t FrameType) String() string {
	switch t {
	case FrameStdin:
		return "stdin"
	case FrameStdinClose:
		return "stdin-close"
	case FrameStdout:
		return "stdout"
	case FrameStderr:
		return "stderr"
	case FrameResize:
		return "resize"
	case FrameExit:
		return "exit"
	case FrameError:
		return "error"
	}
	return fmt.Sprintf("frame(%d)", byte(t))
}

// maxFramePayload bounds one frame, so a corrupt length cannot make a
// peer allocate gigabytes.
const maxFramePayload = 1 << 20

// Size is a terminal size.
type Size struct {
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}

// ExitPayload is the payload of an exit frame.
type ExitPayload struct {
	Code int `json:"code"`
}

// ReadFrame reads one frame; buf is reused when large enough.
func ReadFrame(r io.Reader, buf []byte) (FrameType, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFramePayload {
		return 0, nil, fmt.Errorf("exec frame %s: payload of %d bytes exceeds %d: %w", FrameType(hdr[0]), n, maxFramePayload, errdefs.ErrInvalidArgument)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return FrameType(hdr[0]), buf, nil
}

// FrameWriter writes whole frames from several goroutines.
type FrameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewFrameWriter returns a FrameWriter writing to w.
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

// WriteFrame writes p as frames of type t, split at the payload limit.
func (fw *FrameWriter) WriteFrame(t FrameType, p []byte) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for {
		// Split oversized payloads: the reader refuses frames over the limit.
		chunk := p
		if len(chunk) > maxFramePayload {
			chunk = chunk[:maxFramePayload]
		}
		var hdr [5]byte
		hdr[0] = byte(t)
		binary.BigEndian.PutUint32(hdr[1:], uint32(len(chunk)))
		// One writev per frame on a socket: no copy, no second syscall.
		bufs := net.Buffers{hdr[:], chunk}
		if _, err := bufs.WriteTo(fw.w); err != nil {
			return err
		}
		p = p[len(chunk):]
		if len(p) == 0 {
			return nil
		}
	}
}

// WriteJSON writes v, encoded as JSON, as one frame of type t.
func (fw *FrameWriter) WriteJSON(t FrameType, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return fw.WriteFrame(t, b)
}

// Stream returns a writer that turns each Write into frames of type t.
func (fw *FrameWriter) Stream(t FrameType) io.Writer { return streamWriter{fw, t} }

type streamWriter struct {
	fw *FrameWriter
	t  FrameType
}

func (s streamWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := s.fw.WriteFrame(s.t, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
