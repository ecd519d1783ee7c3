package webterm

import (
	"encoding/json"

	"github.com/creack/pty"
)

// The wire protocol on /ws:
//
//   - binary messages carry terminal bytes: keyboard input from the page,
//     pty output to the page, both raw (UTF-8 split anywhere);
//   - text messages are JSON control frames, a Control with a Type.
//
// Page -> server: {"type":"resize","cols":120,"rows":40}.
// Server -> page: {"type":"hello","pid":42,"shell":"/bin/bash","host":"pod"}
// once the shell runs, and {"type":"exit","code":3} when it exits (128+N
// for a signal, with "signal" naming it), followed by a normal close whose
// reason is "exit 3". A shell that cannot start gets {"type":"error"} and
// close code 1011.
//
// The first size comes from the URL (/ws?cols=120&rows=40) so the shell
// starts at the page's size and nothing redraws.

// Control frame types.
const (
	TypeResize = "resize"
	TypeHello  = "hello"
	TypeExit   = "exit"
	TypeError  = "error"
)

// Control is a JSON control frame.
type Control struct {
	Type    string `json:"type"`
	Cols    int    `json:"cols,omitempty"`    // resize
	Rows    int    `json:"rows,omitempty"`    // resize
	Pid     int    `json:"pid,omitempty"`     // hello
	Shell   string `json:"shell,omitempty"`   // hello
	Host    string `json:"host,omitempty"`    // hello
	Code    *int   `json:"code,omitempty"`    // exit
	Signal  string `json:"signal,omitempty"`  // exit, when killed by a signal
	Message string `json:"message,omitempty"` // error
}

// maxDim bounds a terminal dimension: a page cannot make the kernel
// allocate absurd screens, and 0 would mean "unknown" to programs.
const maxDim = 1000

func validSize(cols, rows int) bool {
	return cols > 0 && rows > 0 && cols <= maxDim && rows <= maxDim
}

// resizeFrom reads a control frame from the page: the terminal size it
// asks for, or nil for a frame that asks for nothing the server does (an
// unknown type, a size out of range). Only malformed JSON is an error.
func resizeFrom(data []byte) (*pty.Winsize, error) {
	var m Control
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m.Type != TypeResize || !validSize(m.Cols, m.Rows) {
		return nil, nil
	}
	return &pty.Winsize{Cols: uint16(m.Cols), Rows: uint16(m.Rows)}, nil
}
