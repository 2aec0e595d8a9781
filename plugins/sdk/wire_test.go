package sdk

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/ripcordhq/ripcord/plugins/internal/pluginpb"
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

// fillProto sets every field of a protocol message, nested ones too.
func fillProto(m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			if fd.Kind() == protoreflect.MessageKind {
				e := l.NewElement()
				fillProto(e.Message())
				l.Append(e)
			} else {
				l.Append(scalar(fd))
			}
		case fd.Kind() == protoreflect.MessageKind:
			fillProto(m.Mutable(fd).Message())
		default:
			m.Set(fd, scalar(fd))
		}
	}
}

func scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString("x-" + string(fd.Name()))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(7)
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(7)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(0.25)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(fd.Enum().Values().Get(1).Number())
	}
	panic("fillProto: unhandled " + fd.Kind().String())
}

func filledProto[M proto.Message](m M) M {
	fillProto(m.ProtoReflect())
	return m
}

// Every field the protocol carries has a place in the SDK's types: what
// the host sends (a release's migrations, say) reaches the plugin whole,
// and what a plugin may report, the host can receive.
func TestEveryProtocolFieldHasAnSDKField(t *testing.T) {
	check := func(name string, in, out proto.Message) {
		t.Helper()
		if !proto.Equal(in, out) {
			t.Errorf("the SDK loses part of %s:\n sent %v\n  got %v", name, in, out)
		}
	}
	ts := filledProto(&pb.TargetStatus{})
	check("TargetStatus", ts, toTargetStatus(fromRef(ts.GetRef()), fromTargetStatus(ts)))
	rel := filledProto(&pb.Release{})
	check("Release", rel, toRelease(fromRelease(rel)))
	run := filledProto(&pb.PipelineRun{})
	check("PipelineRun", run, toPipelineRun(fromPipelineRun(run)))
	w := filledProto(&pb.ErrorWindow{})
	check("ErrorWindow", w, toErrorWindow(fromRef(w.GetRef()), fromErrorWindow(w)))
	f := filledProto(&pb.BackupFacts{})
	check("BackupFacts", f, toBackupFacts(fromBackupFacts(f)))
}
