package podspec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"
)

// Set expressions (pod create --set, pod validate --set) change one field
// of a spec document before it is decoded:
//
//	resources.tier=dev.large
//	environment.FOO=bar
//	network.ports[name=app].internal=3001   (the entry named app; added if missing)
//	services[0].command=["npm","run","dev"] (by index; index == length appends)
//	network.dns.nameservers=1.1.1.1,8.8.8.8 (string lists: comma-separated or JSON)
//	services[name=app].healthCheck={type: http, path: /healthz}
//
// The path follows the spec's field names; the value is read according
// to the type of the field it sets: taken literally for strings, parsed
// for numbers and booleans, YAML for objects and lists of objects.
func DecodeWithSets(data []byte, sets []string) (*Pod, error) {
	doc, err := ApplySets(data, sets)
	if err != nil {
		return nil, err
	}
	return Decode(doc)
}

// ApplySets applies set expressions to a YAML or JSON pod document and
// returns the result as JSON. Every bad expression is reported.
func ApplySets(data []byte, sets []string) ([]byte, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, &ValidationError{Errors: []FieldError{{Message: "parse: " + err.Error()}}}
	}
	var root any = map[string]any{}
	if t := bytes.TrimSpace(js); len(t) > 0 && string(t) != "null" {
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.UseNumber()
		if err := dec.Decode(&root); err != nil {
			return nil, &ValidationError{Errors: []FieldError{{Message: "parse: " + err.Error()}}}
		}
	}
	if _, ok := root.(map[string]any); !ok {
		return nil, &ValidationError{Errors: []FieldError{{Message: "the document must be an object"}}}
	}
	var errs errList
	for _, s := range sets {
		path, val, err := splitSet(s)
		if err == nil {
			root, err = setValue(root, path, val, reflect.TypeFor[Pod]())
		}
		if err != nil {
			errs.add("--set "+s, "%s", err.Error())
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return json.Marshal(root)
}

type segment struct {
	key      string // a field or map key; empty for a selector
	index    int    // [N]
	selName  string // [name=X]
	selector bool
}

var (
	keyRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]+`) })
	selRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\[(?:(\d+)|name=([^\]]+))\]`) })
)

// splitSet splits "path=value" at the first '=' outside brackets and
// parses the path.
func splitSet(s string) ([]segment, string, error) {
	depth, eq := 0, -1
	for i, c := range s {
		switch c {
		case '[':
			depth++
		case ']':
			depth--
		case '=':
			if depth == 0 && eq < 0 {
				eq = i
			}
		}
	}
	if eq < 0 {
		return nil, "", fmt.Errorf("want path=value")
	}
	p, val := s[:eq], s[eq+1:]
	var segs []segment
	for rest := p; ; {
		k := keyRe().FindString(rest)
		if k == "" {
			return nil, "", fmt.Errorf("bad path %q: want field names separated by '.', and [N] or [name=X] after lists", p)
		}
		segs = append(segs, segment{key: k})
		rest = rest[len(k):]
		for {
			m := selRe().FindStringSubmatch(rest)
			if m == nil {
				break
			}
			if m[1] != "" {
				n, err := strconv.Atoi(m[1])
				if err != nil {
					return nil, "", fmt.Errorf("bad index in %q", p)
				}
				segs = append(segs, segment{selector: true, index: n})
			} else {
				segs = append(segs, segment{selector: true, index: -1, selName: m[2]})
			}
			rest = rest[len(m[0]):]
		}
		if rest == "" {
			return segs, val, nil
		}
		if rest[0] != '.' {
			return nil, "", fmt.Errorf("bad path %q: unexpected %q", p, rest)
		}
		rest = rest[1:]
	}
}

// setValue sets path in cur (a generic JSON value of Go type t) and
// returns the new value of cur.
func setValue(cur any, path []segment, raw string, t reflect.Type) (any, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if len(path) == 0 {
		return convert(raw, t)
	}
	seg := path[0]
	if seg.selector {
		if t.Kind() != reflect.Slice {
			return nil, fmt.Errorf("[...] used on a field that is not a list")
		}
		list, _ := cur.([]any)
		i := seg.index
		if seg.selName != "" {
			if et := derefType(t.Elem()); et.Kind() != reflect.Struct || jsonFields(et)["name"] == nil {
				return nil, fmt.Errorf("[name=...] used on a list whose entries have no name")
			}
			i = len(list)
			for j, e := range list {
				if m, ok := e.(map[string]any); ok && m["name"] == seg.selName {
					i = j
				}
			}
			if i == len(list) {
				list = append(list, map[string]any{"name": seg.selName})
			}
		} else if i > len(list) {
			return nil, fmt.Errorf("index %d is beyond the end of the list (length %d)", i, len(list))
		} else if i == len(list) {
			list = append(list, nil)
		}
		v, err := setValue(list[i], path[1:], raw, t.Elem())
		if err != nil {
			return nil, err
		}
		list[i] = v
		return list, nil
	}
	var next reflect.Type
	switch t.Kind() {
	case reflect.Struct:
		next = jsonFields(t)[seg.key]
		if next == nil {
			return nil, fmt.Errorf("unknown field %q", seg.key)
		}
	case reflect.Map:
		next = t.Elem()
	default:
		return nil, fmt.Errorf("%q: the field above it is not an object", seg.key)
	}
	obj, _ := cur.(map[string]any)
	if obj == nil {
		obj = map[string]any{}
	}
	v, err := setValue(obj[seg.key], path[1:], raw, next)
	if err != nil {
		return nil, err
	}
	obj[seg.key] = v
	return obj, nil
}

func derefType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// convert reads raw as a value for a field of type t.
func convert(raw string, t reflect.Type) (any, error) {
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		// Duration, BitRate: a bare number, or their string form.
		if isJSONNumber(raw) {
			return json.Number(raw), nil
		}
		return raw, nil
	}
	switch t.Kind() {
	case reflect.String:
		return raw, nil
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return nil, fmt.Errorf("%q: want true or false", raw)
		}
		return b, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if !isJSONNumber(raw) {
			return nil, fmt.Errorf("%q: want a number", raw)
		}
		return json.Number(raw), nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String && !strings.HasPrefix(strings.TrimSpace(raw), "[") {
			out := []any{}
			if raw != "" {
				for _, s := range strings.Split(raw, ",") {
					out = append(out, s)
				}
			}
			return out, nil
		}
	}
	js, err := yaml.YAMLToJSONStrict([]byte(raw))
	if err != nil {
		return nil, fmt.Errorf("%q: %w", raw, err)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%q: %w", raw, err)
	}
	return v, nil
}

var jsonNumber = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$`)
})

func isJSONNumber(s string) bool { return jsonNumber().MatchString(s) }
