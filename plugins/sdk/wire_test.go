package sdk

import (
	"reflect"
	"testing"
	"time"
)

// fill sets every field of v (a pointer) to a value that is not zero, so a
// field the conversion forgets cannot survive the round trip.
func fill(v reflect.Value, name string) {
	switch {
	case v.Type() == reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Date(2026, 3, 2, 12, 0, len(name), 0, time.UTC)))
	case v.Type() == reflect.TypeFor[RunState]():
		v.Set(reflect.ValueOf(RunWaiting))
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), v.Type().Field(i).Name)
		}
	case v.Kind() == reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), name)
		v.Set(s)
	case v.Kind() == reflect.String:
		v.SetString("x-" + name)
	case v.Kind() == reflect.Int, v.Kind() == reflect.Int64:
		v.SetInt(int64(7 + len(name)))
	case v.Kind() == reflect.Float64:
		v.SetFloat(0.25)
	case v.Kind() == reflect.Bool:
		v.SetBool(true)
	default:
		panic("fill: unhandled " + v.Type().String())
	}
}

func filled[T any]() T {
	var x T
	fill(reflect.ValueOf(&x).Elem(), "")
	return x
}

// Every field of the SDK's types crosses the wire: what a plugin sets is
// what the host receives.
func TestEveryFieldCrossesTheWire(t *testing.T) {
	ref := Ref{Service: "api", Env: "staging"}
	check := func(name string, in, out any) {
		t.Helper()
		if !reflect.DeepEqual(in, out) {
			t.Errorf("%s does not survive the wire:\n sent %+v\n  got %+v", name, in, out)
		}
	}
	ts := filled[TargetStatus]()
	check("TargetStatus", ts, fromTargetStatus(toTargetStatus(ref, ts)))
	rel := filled[Release]()
	check("Release", rel, fromRelease(toRelease(rel)))
	run := filled[PipelineRun]()
	check("PipelineRun", run, fromPipelineRun(toPipelineRun(run)))
	w := filled[ErrorWindow]()
	check("ErrorWindow", w, fromErrorWindow(toErrorWindow(ref, w)))
	f := filled[BackupFacts]()
	check("BackupFacts", f, fromBackupFacts(toBackupFacts(f)))
}
