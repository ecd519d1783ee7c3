package fileutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// UnmarshalStrict decodes the JSON record b into v, refusing fields v does
// not have: a record this version does not fully understand is one it may
// act on wrongly (tear down half a network, keep a lease it cannot see),
// so it is an error rather than a silent loss. Records the node reads but
// does not own (runsc's output, a project's package.json) are decoded
// leniently where they are read, not with this.
func UnmarshalStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

// ReadJSON reads the JSON record at path into v with UnmarshalStrict.
// A missing file is an error satisfying errors.Is(err, fs.ErrNotExist).
func ReadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := UnmarshalStrict(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}
