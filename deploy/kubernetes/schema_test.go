package kubernetes

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// kinds are the API types the manifests may use, by group/version and
// kind: the core, apps and policy groups of the pinned k8s.io/api release.
func kinds() (map[schema.GroupVersionKind]reflect.Type, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	out := map[schema.GroupVersionKind]reflect.Type{}
	for gvk, t := range s.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal || strings.HasSuffix(gvk.Kind, "Options") || gvk.Kind == "WatchEvent" || gvk.Kind == "Status" {
			continue
		}
		out[gvk] = t
	}
	return out, nil
}

// writeSchemas writes a JSON schema (draft 4, as kubeconform reads them)
// for every kind into dir, named as kubeconform's template
// "{{ .ResourceKind }}{{ .KindSuffix }}.json" asks: statefulset-apps-v1.json.
//
// The schemas come from the Go types by reflection, with the rules the
// Kubernetes OpenAPI generator applies: a field is required when its JSON
// tag has no omitempty, embedded structs without a JSON name are inlined,
// and objects take no properties they do not declare (kubeconform's
// -strict). Quantities and int-or-strings take a string or a number.
// apiVersion and kind must be the kind's own.
func writeSchemas(dir string) (int, error) {
	ks, err := kinds()
	if err != nil {
		return 0, err
	}
	for gvk, t := range ks {
		g := &schemaGen{defs: map[string]any{}}
		root := g.object(t)
		props := root["properties"].(map[string]any)
		props["apiVersion"] = map[string]any{"enum": []string{gvk.GroupVersion().String()}}
		props["kind"] = map[string]any{"enum": []string{gvk.Kind}}
		req, _ := root["required"].([]string)
		root["required"] = append(req, "apiVersion", "kind")
		root["$schema"] = "http://json-schema.org/draft-04/schema#"
		root["definitions"] = g.defs
		b, err := json.MarshalIndent(root, "", " ")
		if err != nil {
			return 0, err
		}
		suffix := "-" + strings.ToLower(strings.Split(gvk.Group, ".")[0])
		if gvk.Group == "" {
			suffix = ""
		}
		name := fmt.Sprintf("%s%s-%s.json", strings.ToLower(gvk.Kind), suffix, strings.ToLower(gvk.Version))
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return 0, err
		}
	}
	return len(ks), nil
}

type schemaGen struct{ defs map[string]any }

var (
	quantityType = reflect.TypeFor[resource.Quantity]()
	intStrType   = reflect.TypeFor[intstr.IntOrString]()
	timeType     = reflect.TypeFor[metav1.Time]()
	microType    = reflect.TypeFor[metav1.MicroTime]()
	durationType = reflect.TypeFor[metav1.Duration]()
	rawType      = reflect.TypeFor[runtime.RawExtension]()
	fieldsType   = reflect.TypeFor[metav1.FieldsV1]()
	marshaler    = reflect.TypeFor[json.Marshaler]()
)

// of returns the schema of a value of type t.
func (g *schemaGen) of(t reflect.Type) map[string]any {
	switch t {
	case quantityType, intStrType:
		return map[string]any{"type": []string{"string", "integer", "number"}}
	case timeType, microType:
		return map[string]any{"type": []string{"string", "null"}}
	case durationType:
		return map[string]any{"type": "string"}
	case rawType, fieldsType:
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.of(t.Elem())
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string"} // base64
		}
		return map[string]any{"type": "array", "items": g.of(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.of(t.Elem())}
	case reflect.Struct:
		if t.Implements(marshaler) || reflect.PointerTo(t).Implements(marshaler) {
			return map[string]any{} // its own JSON form: not known here
		}
		// A JSON pointer takes no '/' in a name.
		name := strings.ReplaceAll(t.PkgPath(), "/", "_") + "." + t.Name()
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = nil // recursion stops here
			g.defs[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/definitions/" + name}
	}
	return map[string]any{}
}

// object returns the schema of struct type t with its fields inlined.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	required := []string{}
	g.fields(t, props, &required)
	o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 { // draft 4 takes no empty list
		o["required"] = required
	}
	return o
}

func (g *schemaGen) fields(t reflect.Type, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			g.fields(ft, props, required)
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.of(f.Type)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			*required = append(*required, name)
		}
	}
}
