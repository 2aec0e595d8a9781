package convert

import (
	"reflect"
	"testing"
	"time"

	"github.com/ripcordhq/ripcord/core"
)

func fill(v reflect.Value, name string) {
	switch {
	case v.Type() == reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Date(2026, 3, 2, 12, 0, len(name), 0, time.UTC)))
	case v.Type() == reflect.TypeFor[core.RunState]():
		v.Set(reflect.ValueOf(core.RunWaiting))
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

// Every field the host sends or receives survives the protocol, so a
// field added to core and to the protocol cannot be forgotten between
// them (a backup's status and verify finding once were).
func TestEveryFieldCrossesTheProtocol(t *testing.T) {
	check := func(name string, in, out any) {
		t.Helper()
		if !reflect.DeepEqual(in, out) {
			t.Errorf("%s does not survive the protocol:\n sent %+v\n  got %+v", name, in, out)
		}
	}
	ts := filled[core.TargetStatus]()
	check("TargetStatus", ts, FromTargetStatus(TargetStatus(ts)))
	rel := filled[core.Release]()
	// A hold is the host's own record, never a plugin's business.
	rel.Held, rel.HeldReason = false, ""
	check("Release", rel, FromRelease(Release(rel)))
	run := filled[core.PipelineRun]()
	check("PipelineRun", run, FromPipelineRun(PipelineRun(run)))
	w := filled[core.ErrorWindow]()
	check("ErrorWindow", w, FromErrorWindow(ErrorWindow(w)))
	f := filled[core.BackupFacts]()
	check("BackupFacts", f, FromBackupFacts(BackupFacts(f)))
	op := filled[core.OpRequest]()
	check("OpRequest", op, FromOperation(Operation(op)))
}
