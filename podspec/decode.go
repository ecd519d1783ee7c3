package podspec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Decode reads a pod spec written in YAML or JSON, strictly: an unknown
// field, a duplicate key or a value of the wrong type is an error that
// names the field path (e.g. "network.ports[0].extrnal: unknown field").
// All such problems are reported at once as a *ValidationError. Decode
// does not validate values; Validate does.
func Decode(data []byte) (*Pod, error) {
	var p Pod
	if err := DecodeStrict(data, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// DecodeStrict decodes YAML or JSON into v (a pointer) the way Decode
// does; the templates package uses it for its own documents.
func DecodeStrict(data []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return &ValidationError{Errors: []FieldError{{Message: "parse: " + err.Error()}}}
	}
	js = bytes.TrimSpace(js)
	if len(js) == 0 || string(js) == "null" {
		js = []byte("{}")
	}
	var generic any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return &ValidationError{Errors: []FieldError{{Message: "parse: " + err.Error()}}}
	}
	// Check the whole document against the Go type first so that every
	// unknown field and wrong type is reported with its path; the
	// standard decoder stops at the first and names no list index.
	var errs errList
	checkValue("", generic, reflect.TypeOf(v).Elem(), &errs)
	if err := errs.err(); err != nil {
		return err
	}
	dec = json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// checkValue should have caught it; still, never let it pass.
		return &ValidationError{Errors: []FieldError{{Message: "decode: " + err.Error()}}}
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func kindName(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "null"
}

// checkValue walks a generic JSON value against the Go type it will be
// decoded into, recording unknown fields and type mismatches.
func checkValue(path string, v any, t reflect.Type, errs *errList) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return // null leaves the zero value
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		// v came out of a JSON decode, so it always marshals back.
		b, _ := json.Marshal(v)
		u := reflect.New(t).Interface().(json.Unmarshaler)
		if err := u.UnmarshalJSON(b); err != nil {
			errs.add(path, "%s", err.Error())
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		checkStruct(path, v, t, errs)
	case reflect.Map, reflect.Slice:
		checkContainer(path, v, t, errs)
	case reflect.Interface:
		// anything goes
	default:
		checkScalar(path, v, t, errs)
	}
}

// checkStruct checks an object against a struct: every key must name a
// field (a near miss in case is suggested), and every value fit it.
func checkStruct(path string, v any, t reflect.Type, errs *errList) {
	obj, ok := v.(map[string]any)
	if !ok {
		errs.add(path, "want an object, got %s", kindName(v))
		return
	}
	fields := jsonFields(t)
	for _, k := range sortedKeys(obj) {
		ft, ok := fields[k]
		if !ok {
			msg := "unknown field"
			for name := range fields {
				if strings.EqualFold(name, k) {
					msg = fmt.Sprintf("unknown field (did you mean %q?)", name)
				}
			}
			errs.add(Join(path, k), "%s", msg)
			continue
		}
		checkValue(Join(path, k), obj[k], ft, errs)
	}
}

// checkContainer checks an object against a map, or a list against a slice.
func checkContainer(path string, v any, t reflect.Type, errs *errList) {
	if t.Kind() == reflect.Map {
		obj, ok := v.(map[string]any)
		if !ok {
			errs.add(path, "want an object, got %s", kindName(v))
			return
		}
		for _, k := range sortedKeys(obj) {
			checkValue(Join(path, k), obj[k], t.Elem(), errs)
		}
		return
	}
	list, ok := v.([]any)
	if !ok {
		errs.add(path, "want a list, got %s", kindName(v))
		return
	}
	for i, e := range list {
		checkValue(Index(path, i), e, t.Elem(), errs)
	}
}

// checkScalar checks a string, boolean or number against its Go kind,
// numbers against the range of their type.
func checkScalar(path string, v any, t reflect.Type, errs *errList) {
	want := func(what string) { errs.add(path, "want %s, got %s", what, kindName(v)) }
	n, isNum := v.(json.Number)
	switch t.Kind() {
	case reflect.String:
		if _, ok := v.(string); !ok {
			want("a string")
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			want("a boolean")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !isNum {
			want("an integer")
		} else if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err != nil {
			errs.add(path, "want an integer that fits in %d bits, got %s", t.Bits(), n)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !isNum {
			want("a non-negative integer")
		} else if _, err := strconv.ParseUint(string(n), 10, t.Bits()); err != nil {
			errs.add(path, "want a non-negative integer, got %s", n)
		}
	case reflect.Float32, reflect.Float64:
		if !isNum {
			want("a number")
		} else if f, err := strconv.ParseFloat(string(n), t.Bits()); err != nil || math.IsInf(f, 0) {
			errs.add(path, "want a number, got %s", n)
		}
	default:
		errs.add(path, "cannot decode into %s", t)
	}
}

// jsonFields maps the JSON names of t's fields (embedded structs
// flattened, as encoding/json does) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					if _, dup := out[k]; !dup {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
