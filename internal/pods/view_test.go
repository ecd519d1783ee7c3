package pods

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/supervisor"
)

// fill sets every field of v (recursively) to a non-zero value, so a
// field that a conversion forgets shows up in the JSON.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, *n, time.UTC)))
			return
		}
		for i := range v.NumField() {
			fill(v.Field(i), n)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(v.Index(0), n)
		fill(v.Index(1), n)
	case reflect.String:
		v.SetString("s" + string(rune('a'+*n%26)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint64:
		v.SetUint(uint64(*n))
	default:
		panic("fill: unhandled kind " + v.Kind().String())
	}
}

func filled[T any]() T {
	var v T
	n := 0
	fill(reflect.ValueOf(&v).Elem(), &n)
	return v
}

func sameJSON(t *testing.T, what string, node, wire any) {
	t.Helper()
	a, err := json.Marshal(node)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(wire)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("%s: the API type encodes differently from the node's:\nnode %s\napi  %s", what, a, b)
	}
}

// TestViewsKeepTheWireFormat: the API's own types for events, service
// status and sandbox stats encode exactly as the node's types they are
// converted from, so clients see the same JSON as before the split.
func TestViewsKeepTheWireFormat(t *testing.T) {
	ev := filled[store.Event]()
	sameJSON(t, "event", ev, eventView(ev))

	st := filled[supervisor.Status]()
	sameJSON(t, "service status", st, serviceStatusView(&st))
	sameJSON(t, "services", st.Services, serviceInfos(st.Services))
	sameJSON(t, "no services", []supervisor.ServiceStatus(nil), serviceInfos(nil))
	sameJSON(t, "empty services", []supervisor.ServiceStatus{}, serviceInfos([]supervisor.ServiceStatus{}))

	stats := filled[oci.Stats]()
	sameJSON(t, "sandbox stats", stats, statsView(stats))
}
