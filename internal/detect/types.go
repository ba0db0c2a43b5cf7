package detect

import (
	"fmt"
	"reflect"
	"strings"
	"time"
	"unsafe"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// CEL sees the Go event structs through this registry: each struct becomes
// an object type named agentaudit.<GoName> whose fields are the JSON names.
// Every integer is a CEL int (so `payload.port == 443` type-checks), named
// string types are strings, events.Time and time.Time are timestamps. A field
// that is not in the struct is therefore a type-check error at load time.
// Values are the Go structs themselves, read by reflection with precomputed
// field indexes: a payload is decoded once per event and shared by every rule.

const typePrefix = "agentaudit."

var (
	timeType       = reflect.TypeFor[time.Time]()
	eventsTimeType = reflect.TypeFor[events.Time]()
	stringsType    = reflect.TypeFor[[]string]()
)

type objField struct {
	name  string
	index int
	ft    *types.FieldType
}

type objType struct {
	name    string
	goType  reflect.Type // a struct type
	celType *types.Type
	fields  map[string]*objField
	names   []string
	zero    reflect.Value // pointer to a zero value, for nil pointer fields
}

// typeRegistry is both the CEL type provider and adapter for event structs;
// everything else is delegated to the default registry.
type typeRegistry struct {
	base   *types.Registry
	byName map[string]*objType
	byGo   map[reflect.Type]*objType
}

func newTypeRegistry(roots ...reflect.Type) (*typeRegistry, error) {
	base, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	r := &typeRegistry{base: base, byName: map[string]*objType{}, byGo: map[reflect.Type]*objType{}}
	for _, t := range roots {
		if _, err := r.register(t); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *typeRegistry) register(t reflect.Type) (*objType, error) {
	if ot, ok := r.byGo[t]; ok {
		return ot, nil
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("detect: %v is not a struct", t)
	}
	ot := &objType{
		name:   typePrefix + t.Name(),
		goType: t,
		fields: map[string]*objField{},
		zero:   reflect.New(t),
	}
	ot.celType = types.NewObjectType(ot.name)
	r.byGo[t] = ot
	r.byName[ot.name] = ot
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		ft, err := r.fieldType(t, sf.Type, i, sf.Offset)
		if err != nil {
			return nil, err
		}
		if ft == nil {
			continue // not visible to rules (the envelope's raw payload)
		}
		ot.fields[name] = &objField{name: name, index: i, ft: ft}
		ot.names = append(ot.names, name)
	}
	return ot, nil
}

// fieldType maps field i (type t, at offset off) of struct owner to its CEL
// type and accessors. GetFrom receives a pointer to the enclosing struct.
func (r *typeRegistry) fieldType(owner, t reflect.Type, i int, off uintptr) (*types.FieldType, error) {
	field := func(target any) reflect.Value { return reflect.ValueOf(target).Elem().Field(i) }
	nonZero := func(target any) bool { return !field(target).IsZero() }
	// The hot accessors read the field at its offset instead of through
	// reflect.Value: rules read a handful of fields per event each, and
	// reflection was a tenth of the engine's time. at returns nil when
	// target is not a *owner, and the accessor falls back to reflection.
	var sample any = reflect.New(owner).Interface()
	ownerPtr := (*[2]unsafe.Pointer)(unsafe.Pointer(&sample))[0]
	at := func(target any) unsafe.Pointer {
		w := (*[2]unsafe.Pointer)(unsafe.Pointer(&target))
		if w[0] != ownerPtr || w[1] == nil {
			return nil
		}
		return unsafe.Add(w[1], off)
	}
	switch {
	case t == timeType:
		return &types.FieldType{Type: types.TimestampType, IsSet: nonZero, GetFrom: func(target any) (any, error) {
			return types.Timestamp{Time: field(target).Interface().(time.Time)}, nil
		}}, nil
	case t == eventsTimeType:
		return &types.FieldType{Type: types.TimestampType, IsSet: nonZero, GetFrom: func(target any) (any, error) {
			return types.Timestamp{Time: field(target).Interface().(events.Time).Time}, nil
		}}, nil
	}
	switch t.Kind() {
	case reflect.String:
		return &types.FieldType{Type: types.StringType, IsSet: nonZero, GetFrom: func(target any) (any, error) {
			if p := at(target); p != nil {
				return types.String(*(*string)(p)), nil
			}
			return types.String(field(target).String()), nil
		}}, nil
	case reflect.Bool:
		return &types.FieldType{Type: types.BoolType, IsSet: nonZero, GetFrom: func(target any) (any, error) {
			if p := at(target); p != nil {
				return types.Bool(*(*bool)(p)), nil
			}
			return types.Bool(field(target).Bool()), nil
		}}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return &types.FieldType{Type: types.IntType, IsSet: nonZero, GetFrom: func(target any) (any, error) {
			if p := at(target); p != nil {
				switch t.Size() {
				case 8:
					return types.Int(*(*int64)(p)), nil
				case 4:
					return types.Int(*(*int32)(p)), nil
				}
			}
			return types.Int(field(target).Int()), nil
		}}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return &types.FieldType{Type: types.IntType, IsSet: nonZero, GetFrom: func(target any) (any, error) {
			if p := at(target); p != nil {
				switch t.Size() {
				case 8:
					return types.Int(int64(*(*uint64)(p))), nil
				case 2:
					return types.Int(int64(*(*uint16)(p))), nil
				}
			}
			return types.Int(int64(field(target).Uint())), nil
		}}, nil
	case reflect.Slice:
		if t.Elem().Kind() != reflect.String {
			return nil, nil
		}
		return &types.FieldType{Type: types.NewListType(types.StringType), IsSet: nonZero, GetFrom: func(target any) (any, error) {
			v := field(target)
			if v.Type() == stringsType {
				return types.NewStringList(r, v.Interface().([]string)), nil
			}
			out := make([]string, v.Len())
			for j := range out {
				out[j] = v.Index(j).String()
			}
			return types.NewStringList(r, out), nil
		}}, nil
	case reflect.Struct:
		ot, err := r.register(t)
		if err != nil {
			return nil, err
		}
		return &types.FieldType{Type: ot.celType, IsSet: nonZero, GetFrom: func(target any) (any, error) {
			if p := at(target); p != nil {
				return reflect.NewAt(t, p).Interface(), nil
			}
			return field(target).Addr().Interface(), nil
		}}, nil
	case reflect.Pointer:
		if t.Elem().Kind() != reflect.Struct {
			if t.Elem().Kind() >= reflect.Int && t.Elem().Kind() <= reflect.Uint64 {
				// Optional integers (content_length): absent reads as 0,
				// has() tells absent from zero.
				signed := t.Elem().Kind() <= reflect.Int64
				return &types.FieldType{Type: types.IntType, IsSet: nonZero, GetFrom: func(target any) (any, error) {
					v := field(target)
					if v.IsNil() {
						return types.Int(0), nil
					}
					if signed {
						return types.Int(v.Elem().Int()), nil
					}
					return types.Int(int64(v.Elem().Uint())), nil
				}}, nil
			}
			return nil, nil
		}
		ot, err := r.register(t.Elem())
		if err != nil {
			return nil, err
		}
		return &types.FieldType{Type: ot.celType, IsSet: nonZero, GetFrom: func(target any) (any, error) {
			v := field(target)
			if v.IsNil() {
				// An absent optional object reads as its zero value, as
				// an absent protobuf message does; has() tells them apart.
				return ot.zero.Interface(), nil
			}
			return v.Interface(), nil
		}}, nil
	}
	return nil, nil
}

// EnumValue implements types.Provider.
func (r *typeRegistry) EnumValue(name string) ref.Val { return r.base.EnumValue(name) }

// FindIdent implements types.Provider.
func (r *typeRegistry) FindIdent(name string) (ref.Val, bool) { return r.base.FindIdent(name) }

// FindStructType implements types.Provider.
func (r *typeRegistry) FindStructType(name string) (*types.Type, bool) {
	if ot, ok := r.byName[name]; ok {
		return types.NewTypeTypeWithParam(ot.celType), true
	}
	return r.base.FindStructType(name)
}

// FindStructFieldNames implements types.Provider.
func (r *typeRegistry) FindStructFieldNames(name string) ([]string, bool) {
	if ot, ok := r.byName[name]; ok {
		return ot.names, true
	}
	return r.base.FindStructFieldNames(name)
}

// FindStructFieldType implements types.Provider.
func (r *typeRegistry) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if ot, ok := r.byName[name]; ok {
		f, ok := ot.fields[field]
		if !ok {
			return nil, false
		}
		return f.ft, true
	}
	return r.base.FindStructFieldType(name, field)
}

// NewValue implements types.Provider. Rules read events; they cannot build
// them.
func (r *typeRegistry) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := r.byName[name]; ok {
		return types.NewErr("detect: cannot construct %s in a rule", name)
	}
	return r.base.NewValue(name, fields)
}

// NativeToValue implements types.Adapter.
func (r *typeRegistry) NativeToValue(v any) ref.Val {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		if ot, ok := r.byGo[rv.Type().Elem()]; ok {
			return &objVal{t: ot, ptr: v, reg: r}
		}
	}
	return r.base.NativeToValue(v)
}

// objVal is an event struct as a CEL value when it escapes field selection
// (for example `payload.arguments` as a whole, or under dyn()).
type objVal struct {
	t   *objType
	ptr any
	reg *typeRegistry
}

var _ traits.Indexer = (*objVal)(nil)

func (o *objVal) ConvertToNative(t reflect.Type) (any, error) {
	if reflect.TypeOf(o.ptr).AssignableTo(t) {
		return o.ptr, nil
	}
	return nil, fmt.Errorf("detect: cannot convert %s to %v", o.t.name, t)
}

func (o *objVal) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return o.t.celType
	}
	if t.TypeName() == o.t.name {
		return o
	}
	return types.NewErr("detect: cannot convert %s to %s", o.t.name, t.TypeName())
}

func (o *objVal) Equal(other ref.Val) ref.Val {
	ov, ok := other.(*objVal)
	return types.Bool(ok && ov.t == o.t && reflect.DeepEqual(reflect.ValueOf(o.ptr).Elem().Interface(), reflect.ValueOf(ov.ptr).Elem().Interface()))
}

func (o *objVal) Type() ref.Type { return o.t.celType }
func (o *objVal) Value() any     { return o.ptr }

func (o *objVal) Get(index ref.Val) ref.Val {
	name, ok := index.(types.String)
	if !ok {
		return types.NewErr("detect: no such field %v", index)
	}
	f, ok := o.t.fields[string(name)]
	if !ok {
		return types.NewErr("detect: no such field %s", name)
	}
	v, _ := f.ft.GetFrom(o.ptr)
	return o.reg.NativeToValue(v)
}

func (o *objVal) IsSet(field ref.Val) ref.Val {
	name, ok := field.(types.String)
	if !ok {
		return types.NewErr("detect: no such field %v", field)
	}
	f, ok := o.t.fields[string(name)]
	if !ok {
		return types.NewErr("detect: no such field %s", name)
	}
	return types.Bool(f.ft.IsSet(o.ptr))
}
