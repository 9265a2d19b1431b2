package role_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/carbonkit/carbon/internal/testpb"
	"github.com/carbonkit/carbon/role"
)

func TestClassifier(t *testing.T) {
	c := role.NewClassifier(role.WithReadMethods("/carbon.test.v1.Guard/Sea*", "/other.v1.*/List*"))
	for m, want := range map[string]bool{
		testpb.Guard_Get_FullMethodName:                                  true, // NO_SIDE_EFFECTS
		testpb.Guard_List_FullMethodName:                                 true,
		testpb.Guard_Sum_FullMethodName:                                  true,
		testpb.Guard_Watch_FullMethodName:                                true,
		testpb.Guard_Put_FullMethodName:                                  false,
		testpb.Guard_Delete_FullMethodName:                               false, // IDEMPOTENT is not NO_SIDE_EFFECTS
		testpb.Guard_Import_FullMethodName:                               false,
		testpb.Guard_Upload_FullMethodName:                               false,
		testpb.Guard_Sync_FullMethodName:                                 false,
		testpb.Guard_Search_FullMethodName:                               true, // rule
		"carbon.test.v1.Guard/Get":                                       true, // grpc-go routes names without the leading "/"
		"/other.v1.Things/ListAll":                                       true, // rule, no descriptor needed
		"/other.v1.Things/Delete":                                        false,
		"/other.v1.Things/List/x":                                        false, // "*" does not cross "/"
		"/unknown.Svc/Get":                                               false, // unknown: write
		"/grpc.health.v1.Health/Check":                                   true,
		"/grpc.health.v1.Health/Watch":                                   true,
		"/grpc.health.v1.Health/List":                                    true,
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      true,
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": true,
		"/grpc.channelz.v1.Channelz/GetTopChannels":                      true,
		"/grpc.healthx.v1.Health/Check":                                  false,
		"":                                                               false,
		"/":                                                              false,
		"noslash":                                                        false,
		"/carbon.test.v1.Guard/":                                         false,
		"//Get":                                                          false,
		"/carbon.test.v1.Guard/Get/../Put":                               false,
		"/carbon.test.v1.Guard/Get\x00":                                  false,
	} {
		for i := 0; i < 2; i++ { // uncached, then cached
			if got := c.IsRead(m); got != want {
				t.Errorf("IsRead(%q) #%d = %v, want %v", m, i, got, want)
			}
		}
	}
}

func TestClassifierDescriptors(t *testing.T) {
	// Without descriptors only rules and built-ins make reads.
	if role.NewClassifier(role.WithDescriptors(nil)).IsRead(testpb.Guard_Get_FullMethodName) {
		t.Error("annotated read found with descriptors off")
	}
	if role.NewClassifier(role.WithDescriptors(new(protoregistry.Files))).IsRead(testpb.Guard_Get_FullMethodName) {
		t.Error("annotated read found in an empty registry")
	}
	files := new(protoregistry.Files)
	if err := files.RegisterFile(testpb.File_guardtest_proto); err != nil {
		t.Fatal(err)
	}
	c := role.NewClassifier(role.WithDescriptors(files))
	if !c.IsRead(testpb.Guard_Get_FullMethodName) || c.IsRead(testpb.Guard_Put_FullMethodName) {
		t.Error("custom registry not used")
	}
}

// TestClassifierRuleCallMeta checks what a rule sees: the method split
// into service and method, and the stream type from the descriptor.
func TestClassifierRuleCallMeta(t *testing.T) {
	var seen []interceptors.CallMeta
	c := role.NewClassifier(role.WithReadRule(selector.MatchFunc(func(ctx context.Context, cm interceptors.CallMeta) bool {
		seen = append(seen, cm)
		return cm.Typ == interceptors.ServerStream
	})))
	if !c.IsRead(testpb.Guard_Import_FullMethodName) {
		t.Error("rule on the stream type did not make Import a read")
	}
	if c.IsRead(testpb.Guard_Put_FullMethodName) || c.IsRead("/x.Y/Z") {
		t.Error("rule matched a unary or unknown method")
	}
	c.IsRead(testpb.Guard_Import_FullMethodName) // cached: the rule is not asked again
	want := []interceptors.CallMeta{
		{Service: "carbon.test.v1.Guard", Method: "Import", Typ: interceptors.ServerStream},
		{Service: "carbon.test.v1.Guard", Method: "Put", Typ: interceptors.Unary},
		{Service: "x.Y", Method: "Z"},
	}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("rule saw %v, want %v", seen, want)
	}
}

// TestClassifierCacheBound classifies more methods than are cached.
func TestClassifierCacheBound(t *testing.T) {
	c := role.NewClassifier(role.WithReadMethods("/s.S/Get*"))
	for i := 0; i < 5000; i++ {
		if c.IsRead(fmt.Sprintf("/s.S/Put%d", i)) || !c.IsRead(fmt.Sprintf("/s.S/Get%d", i)) {
			t.Fatalf("wrong verdict at %d", i)
		}
	}
}

func TestOptionPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"bad method pattern": func() { role.MethodPatterns("/a/[") },
		"bad HTTP pattern":   func() { role.WithHTTPReadRule("POST", "/a/[") },
		"empty HTTP method":  func() { role.WithHTTPReadRule("", "/a") },
		"classifier and rules": func() {
			role.NewGuard(role.Static(role.Worker), role.WithClassifier(role.NewClassifier()), role.WithReadMethods("/a/b"))
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestWithClassifier(t *testing.T) {
	c := role.NewClassifier(role.WithReadMethods("/carbon.test.v1.Guard/Put"))
	g := role.NewGuard(role.Static(role.Worker), role.WithClassifier(c))
	if g.Classifier() != c {
		t.Fatal("Guard does not use the given Classifier")
	}
	ran := false
	_, err := g.UnaryServerInterceptor()(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: testpb.Guard_Put_FullMethodName},
		func(context.Context, any) (any, error) { ran = true; return nil, nil })
	if err != nil || !ran {
		t.Errorf("shared rule not applied: %v", err)
	}
}

// TestZeroAllocs checks the hot paths: a read through the interceptors,
// and the classifiers, once warm.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	g := role.NewGuard(role.Static(role.Worker), httpRules()...)
	ctx := context.Background()
	unary := g.UnaryServerInterceptor()
	stream := g.StreamServerInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: testpb.Guard_Get_FullMethodName}
	sinfo := &grpc.StreamServerInfo{FullMethod: testpb.Guard_Watch_FullMethodName, IsClientStream: true, IsServerStream: true}
	noop := func(context.Context, any) (any, error) { return nil, nil }
	snoop := func(any, grpc.ServerStream) error { return nil }
	get := httptest.NewRequest(http.MethodGet, "/items?a=1&b=2", nil)
	post := httptest.NewRequest(http.MethodPost, "/items?a=1", nil)
	search := httptest.NewRequest(http.MethodPost, "/search", nil)
	c := g.Classifier()
	for name, f := range map[string]func(){
		"unary read":        func() { _, _ = unary(ctx, nil, info, noop) },
		"stream read":       func() { _ = stream(nil, nil, sinfo, snoop) },
		"IsRead":            func() { c.IsRead(testpb.Guard_Put_FullMethodName) },
		"IsReadRequest GET": func() { c.IsReadRequest(get) },
		"IsReadRequest POST": func() {
			c.IsReadRequest(post)
		},
		"IsReadRequest ruled POST": func() { c.IsReadRequest(search) },
	} {
		f() // warm the caches
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, n)
		}
	}
}
