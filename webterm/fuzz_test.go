package webterm

import (
	"encoding/json"
	"testing"
)

// FuzzControlFrame feeds arbitrary text frames to the control-frame
// reader: it never panics, and a size it lets through to the pty is
// always within the bounds a page may ask for, exactly as the frame said.
func FuzzControlFrame(f *testing.F) {
	for _, seed := range []string{
		`{"type":"resize","cols":120,"rows":40}`, `{"type":"resize","cols":0,"rows":40}`,
		`{"type":"resize","cols":1001,"rows":1}`, `{"type":"resize","cols":-5,"rows":70000}`,
		`{"type":"resize","cols":65537,"rows":65537}`, `{"type":"hello","pid":1}`, `{"type":"resize"}`,
		`{"type":"resize","cols":1e3,"rows":2.5}`, `[]`, `null`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ws, err := resizeFrom(data)
		if err != nil || ws == nil {
			return
		}
		var m Control
		if json.Unmarshal(data, &m) != nil || m.Type != TypeResize || int(ws.Cols) != m.Cols || int(ws.Rows) != m.Rows {
			t.Fatalf("frame %q gave size %+v", data, ws)
		}
		if ws.Cols == 0 || ws.Rows == 0 || ws.Cols > maxDim || ws.Rows > maxDim {
			t.Fatalf("frame %q let %+v through", data, ws)
		}
	})
}
