package kubernetes

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kubeconformVersion is the version .ci/run installs.
const kubeconformVersion = "v0.8.0"

// doc is one YAML document of a manifest file, decoded into its API type.
type doc struct {
	file string
	gvk  schema.GroupVersionKind
	raw  []byte
	obj  any
}

func (d doc) String() string { return d.file + ": " + d.gvk.Kind }

// splitDocs returns the YAML documents of b that hold more than comments.
func splitDocs(b []byte) ([][]byte, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(d, &m); err != nil {
			return nil, err
		}
		if len(m) > 0 {
			out = append(out, d)
		}
	}
}

// decode decodes raw strictly into the API type its apiVersion and kind
// name: an unknown or duplicate field is an error.
func decode(ks map[schema.GroupVersionKind]reflect.Type, raw []byte) (schema.GroupVersionKind, any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		return schema.GroupVersionKind{}, nil, err
	}
	gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
	t, ok := ks[gvk]
	if !ok {
		return gvk, nil, errors.New("no API type for apiVersion " + tm.APIVersion + " kind " + tm.Kind)
	}
	// As the API server decodes: duplicate YAML keys, unknown fields and
	// fields spelt in another case are errors (encoding/json, and so
	// yaml.UnmarshalStrict, would match "clusterIp" to clusterIP).
	j, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return gvk, nil, err
	}
	obj := reflect.New(t).Interface()
	strict, err := sigsjson.UnmarshalStrict(j, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err == nil {
		err = errors.Join(strict...)
	}
	if err != nil {
		return gvk, nil, err
	}
	return gvk, obj, nil
}

// load decodes every manifest beside this file (kustomization.yaml apart).
func load(t *testing.T) []doc {
	t.Helper()
	ks, err := kinds()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("*.yaml")
	var docs []doc
	for _, f := range files {
		if f == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raws, err := splitDocs(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i, raw := range raws {
			gvk, obj, err := decode(ks, raw)
			if err != nil {
				t.Errorf("%s, document %d: %v", f, i+1, err)
				continue
			}
			docs = append(docs, doc{file: f, gvk: gvk, raw: raw, obj: obj})
		}
	}
	if len(docs) == 0 {
		t.Fatal("no manifests found")
	}
	return docs
}

func all[T any](docs []doc) []*T {
	var out []*T
	for _, d := range docs {
		if o, ok := d.obj.(*T); ok {
			out = append(out, o)
		}
	}
	return out
}

// TestDecodeRejectsUnknownFields: the strict decoding the other tests rely
// on refuses a misspelt field and a duplicate key.
func TestDecodeRejectsUnknownFields(t *testing.T) {
	ks, err := kinds()
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIp: None}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIP: None, clusterIP: None}\n",
		"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {replicas: three}\n",
	} {
		if _, _, err := decode(ks, []byte(bad)); err == nil {
			t.Errorf("decoded without error:\n%s", bad)
		}
	}
}

// TestManifestsDecode: every document is a known API object without an
// unknown field, and pattern 3 is all there.
func TestManifestsDecode(t *testing.T) {
	docs := load(t)
	count := map[string]int{}
	for _, d := range docs {
		count[d.gvk.Kind]++
	}
	want := map[string]int{"Namespace": 1, "Secret": 1, "Service": 4, "StatefulSet": 2, "Deployment": 2, "PodDisruptionBudget": 1}
	if !reflect.DeepEqual(count, want) {
		t.Errorf("kinds = %v, want %v", count, want)
	}
}

// TestKustomizationListsEveryManifest: kubectl apply -k applies them all.
func TestKustomizationListsEveryManifest(t *testing.T) {
	b, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("*.yaml")
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	slices.Sort(files)
	got := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(got, files) {
		t.Errorf("kustomization resources %v, want the manifests %v", got, files)
	}
}

// workload is a StatefulSet's or a Deployment's pod template.
type workload struct {
	kind, name string
	replicas   int32
	selector   *metav1.LabelSelector
	pod        corev1.PodTemplateSpec
}

func workloads(docs []doc) []workload {
	var out []workload
	for _, s := range all[appsv1.StatefulSet](docs) {
		out = append(out, workload{"StatefulSet", s.Name, ptrOr(s.Spec.Replicas, 1), s.Spec.Selector, s.Spec.Template})
	}
	for _, d := range all[appsv1.Deployment](docs) {
		out = append(out, workload{"Deployment", d.Name, ptrOr(d.Spec.Replicas, 1), d.Spec.Selector, d.Spec.Template})
	}
	return out
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// env returns a container's plain environment values, with $(VAR)
// references to earlier variables left as they are.
func env(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func selects(t *testing.T, sel *metav1.LabelSelector, lbls map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return !s.Empty() && s.Matches(labels.Set(lbls))
}

// TestManifestsFitTogether checks what a schema cannot: that the objects
// refer to each other correctly and the timings agree.
func TestManifestsFitTogether(t *testing.T) {
	docs := load(t)
	services := map[string]*corev1.Service{}
	for _, s := range all[corev1.Service](docs) {
		services[s.Name] = s
	}
	secrets := map[string]*corev1.Secret{}
	for _, s := range all[corev1.Secret](docs) {
		secrets[s.Name] = s
	}
	namespaces := map[string]bool{}
	for _, n := range all[corev1.Namespace](docs) {
		namespaces[n.Name] = true
	}
	for _, d := range docs {
		var m struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		_ = yaml.Unmarshal(d.raw, &m)
		if d.gvk.Kind != "Namespace" && !namespaces[m.Metadata.Namespace] {
			t.Errorf("%v %s: namespace %q is not among the manifests", d, m.Metadata.Name, m.Metadata.Namespace)
		}
	}
	wls := workloads(docs)

	for _, w := range wls {
		t.Run(w.name, func(t *testing.T) {
			if !selects(t, w.selector, w.pod.Labels) {
				t.Errorf("selector %v does not select the pod template's labels %v", w.selector, w.pod.Labels)
			}
			if len(w.pod.Spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(w.pod.Spec.Containers))
			}
			c := w.pod.Spec.Containers[0]
			e := env(c)
			ports := map[string]corev1.ContainerPort{}
			for _, p := range c.Ports {
				ports[p.Name] = p
			}

			// $(VAR) references name variables defined before them.
			defined := map[string]bool{}
			for _, v := range c.Env {
				for _, ref := range envRef.FindAllStringSubmatch(v.Value, -1) {
					if !defined[ref[1]] {
						t.Errorf("%s refers to $(%s), not defined before it", v.Name, ref[1])
					}
				}
				defined[v.Name] = true
				if v.ValueFrom != nil && v.ValueFrom.SecretKeyRef != nil {
					ref := v.ValueFrom.SecretKeyRef
					s, ok := secrets[ref.Name]
					if !ok {
						t.Errorf("%s: Secret %q is not among the manifests", v.Name, ref.Name)
					} else if _, ok := s.StringData[ref.Key]; !ok {
						if _, ok := s.Data[ref.Key]; !ok {
							t.Errorf("%s: Secret %q has no key %q", v.Name, ref.Name, ref.Key)
						}
					}
				}
			}

			// Gossip: bind, advertise, seeds and the container's ports agree.
			_, bindPort, err := net.SplitHostPort(e["CARBON_BIND"])
			if err != nil {
				t.Fatalf("CARBON_BIND %q: %v", e["CARBON_BIND"], err)
			}
			if _, p, _ := net.SplitHostPort(e["CARBON_ADVERTISE"]); p != bindPort || !strings.HasPrefix(e["CARBON_ADVERTISE"], "$(POD_IP)") {
				t.Errorf("CARBON_ADVERTISE %q: want $(POD_IP):%s", e["CARBON_ADVERTISE"], bindPort)
			}
			for _, name := range []string{"gossip-tcp", "gossip-udp"} {
				if p, ok := ports[name]; !ok || strconv.Itoa(int(p.ContainerPort)) != bindPort {
					t.Errorf("container port %s = %+v, want %s", name, p, bindPort)
				}
			}
			seeds := strings.Split(e["CARBON_SEEDS"], ",")
			if len(seeds) == 0 || seeds[0] == "" {
				t.Fatal("no CARBON_SEEDS")
			}
			for _, seed := range seeds {
				host, port, err := net.SplitHostPort(seed)
				if err != nil {
					t.Errorf("seed %q: %v", seed, err)
					continue
				}
				if port != bindPort {
					t.Errorf("seed %q: port %s, the nodes gossip on %s", seed, port, bindPort)
				}
				svc, ok := services[host]
				if !ok {
					t.Errorf("seed %q names no Service of the manifests", seed)
					continue
				}
				if svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
					t.Errorf("seed Service %s: want headless (clusterIP None) with publishNotReadyAddresses, so that it resolves to every pod's IP, ready or not", host)
				}
				var tcp, udp bool
				for _, p := range svc.Spec.Ports {
					if strconv.Itoa(int(p.Port)) == port {
						tcp = tcp || p.Protocol == corev1.ProtocolTCP
						udp = udp || p.Protocol == corev1.ProtocolUDP
					}
				}
				if !tcp || !udp {
					t.Errorf("seed Service %s: want port %s over TCP and UDP", host, port)
				}
				var backed bool
				for _, o := range wls {
					backed = backed || (o.kind == "StatefulSet" && selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, o.pod.Labels))
				}
				if !backed {
					t.Errorf("seed Service %s selects no StatefulSet's pods", host)
				}
			}

			// Shutdown: the grace period covers the preStop hook and the
			// drain that SIGTERM starts.
			drain, err := time.ParseDuration(e["CARBON_DRAIN_TIMEOUT"])
			if err != nil {
				t.Fatalf("CARBON_DRAIN_TIMEOUT: %v", err)
			}
			var preStop time.Duration
			if l := c.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Sleep != nil {
				preStop = time.Duration(l.PreStop.Sleep.Seconds) * time.Second
			}
			grace := time.Duration(ptrOr(w.pod.Spec.TerminationGracePeriodSeconds, 30)) * time.Second
			if grace <= preStop+drain {
				t.Errorf("terminationGracePeriodSeconds %v must exceed the preStop sleep %v plus CARBON_DRAIN_TIMEOUT %v", grace, preStop, drain)
			}

			// Readiness from the serving state, on the HTTP listener.
			rp := c.ReadinessProbe
			if rp == nil || rp.HTTPGet == nil {
				t.Fatal("no HTTP readiness probe")
			}
			hp, ok := ports[rp.HTTPGet.Port.String()]
			if _, p, _ := net.SplitHostPort(e["CARBON_HTTP"]); !ok || strconv.Itoa(int(hp.ContainerPort)) != p {
				t.Errorf("readiness probe port %s is not CARBON_HTTP's (%s)", rp.HTTPGet.Port.String(), e["CARBON_HTTP"])
			}
			if w.kind == "StatefulSet" && rp.HTTPGet.Path != "/healthz" {
				t.Errorf("readiness probe path %q, want /healthz (200 only while serving)", rp.HTTPGet.Path)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Error("no CPU or memory request")
			}
			if w.kind == "StatefulSet" {
				svc, ok := services[all[appsv1.StatefulSet](docs)[slices.IndexFunc(all[appsv1.StatefulSet](docs), func(s *appsv1.StatefulSet) bool { return s.Name == w.name })].Spec.ServiceName]
				if !ok || svc.Spec.ClusterIP != corev1.ClusterIPNone {
					t.Error("serviceName does not name a headless Service")
				}
			} else {
				var fronted bool
				for _, s := range services {
					fronted = fronted || (s.Spec.ClusterIP != corev1.ClusterIPNone && selects(t, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}, w.pod.Labels))
				}
				if !fronted {
					t.Error("no Service in front of the gateway")
				}
			}
		})
	}

	// The managers' budget: one at a time, and never below the quorum.
	pdbs := all[policyv1.PodDisruptionBudget](docs)
	var mgt *workload
	for i, w := range wls {
		if env(w.pod.Spec.Containers[0])["CARBON_SUB_DOMAIN"] == "mgt" && w.kind == "StatefulSet" {
			mgt = &wls[i]
		}
	}
	if mgt == nil {
		t.Fatal("no managers' StatefulSet")
	}
	var covered bool
	for _, p := range pdbs {
		if !selects(t, p.Spec.Selector, mgt.pod.Labels) {
			continue
		}
		covered = true
		if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.IntValue() != 1 {
			t.Errorf("PodDisruptionBudget %s: maxUnavailable %v, want 1", p.Name, p.Spec.MaxUnavailable)
		}
		if q, _ := strconv.Atoi(env(mgt.pod.Spec.Containers[0])["CARBON_QUORUM"]); q > 0 && int(mgt.replicas)-1 < q/2+1 {
			t.Errorf("quorum %d needs %d managers up; %d replicas less one disrupted leave %d", q, q/2+1, mgt.replicas, mgt.replicas-1)
		}
	}
	if !covered {
		t.Error("no PodDisruptionBudget selects the managers")
	}
}

// TestEnvironmentNamesFlags: every CARBON_* variable given to a container
// is a flag of the program it runs (the example binaries read them, and
// ignore a misspelt one silently).
func TestEnvironmentNamesFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example binaries")
	}
	docs := load(t)
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(os.PathSeparator), "./examples/worker", "./examples/manager", "./examples/gateway")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	flagVar := regexp.MustCompile(`\(\$(CARBON_[A-Z_]+)\)`)
	flags := map[string][]string{}
	for _, prog := range []string{"worker", "manager", "gateway"} {
		out, _ := exec.Command(filepath.Join(bin, prog), "-h").CombinedOutput()
		for _, m := range flagVar.FindAllStringSubmatch(string(out), -1) {
			flags[prog] = append(flags[prog], m[1])
		}
		if len(flags[prog]) == 0 {
			t.Fatalf("%s -h lists no $CARBON_ variables:\n%s", prog, out)
		}
	}
	for _, w := range workloads(docs) {
		c := w.pod.Spec.Containers[0]
		if len(c.Command) == 0 {
			t.Errorf("%s: no command", w.name)
			continue
		}
		prog := filepath.Base(c.Command[0])
		known, ok := flags[prog]
		if !ok {
			t.Errorf("%s runs %q, not an example program", w.name, c.Command[0])
			continue
		}
		for _, v := range c.Env {
			if strings.HasPrefix(v.Name, "CARBON_") && !slices.Contains(known, v.Name) {
				t.Errorf("%s: %s is not a flag of %s", w.name, v.Name, prog)
			}
		}
	}
}

// findKubeconform returns the kubeconform binary on PATH or where go
// install puts it.
func findKubeconform() (string, bool) {
	if p, err := exec.LookPath("kubeconform"); err == nil {
		return p, true
	}
	for _, v := range []string{"GOBIN", "GOPATH"} {
		out, err := exec.Command("go", "env", v).Output()
		dir := strings.TrimSpace(string(out))
		if err != nil || dir == "" {
			continue
		}
		if v == "GOPATH" {
			dir = filepath.Join(strings.Split(dir, string(os.PathListSeparator))[0], "bin")
		}
		p := filepath.Join(dir, "kubeconform")
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	return "", false
}

type kubeconformSummary struct {
	Summary struct {
		Valid, Invalid, Errors, Skipped int
	} `json:"summary"`
	Resources []struct {
		Filename, Kind, Name, Status, Msg string
	} `json:"resources"`
}

// kubeconform validates files against the schemas in dir, offline, and
// returns its report.
func kubeconform(t *testing.T, bin, schemas string, files ...string) (kubeconformSummary, error) {
	t.Helper()
	args := append([]string{"-strict", "-summary", "-output", "json", "-skip", "Kustomization",
		"-schema-location", filepath.Join(schemas, "{{ .ResourceKind }}{{ .KindSuffix }}.json")}, files...)
	cmd := exec.Command(bin, args...)
	out, err := cmd.Output()
	var s kubeconformSummary
	if jerr := json.Unmarshal(out, &s); jerr != nil {
		t.Fatalf("kubeconform output: %v\n%s", jerr, out)
	}
	return s, err
}

// TestKubeconform validates the manifests with kubeconform against JSON
// schemas generated from the pinned k8s.io/api types (kubeconform would
// download its schemas, which a machine without that network cannot).
func TestKubeconform(t *testing.T) {
	bin, ok := findKubeconform()
	if !ok {
		t.Skip("kubeconform not installed (go install github.com/yannh/kubeconform/cmd/kubeconform@" + kubeconformVersion + ")")
	}
	schemas := t.TempDir()
	n, err := writeSchemas(schemas)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d schemas generated", n)

	// The schemas must catch what they are for: an unknown field, a wrong
	// type, a missing required field.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: unknown-field}
spec:
  selector: {matchLabels: {a: b}}
  replicaCount: 3
  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: wrong-type}
spec:
  selector: {matchLabels: {a: b}}
  replicas: three
  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}
---
apiVersion: v1
kind: Service
metadata: {name: missing-port}
spec:
  ports: [{name: http}]
`), 0o644)
	s, err := kubeconform(t, bin, schemas, bad)
	if err == nil || s.Summary.Invalid != 3 {
		t.Errorf("kubeconform passed broken manifests: %+v", s)
	}

	files, _ := filepath.Glob("*.yaml")
	s, err = kubeconform(t, bin, schemas, files...)
	for _, r := range s.Resources {
		if r.Status != "statusValid" && r.Status != "statusSkipped" {
			t.Errorf("%s %s %s: %s %s", r.Filename, r.Kind, r.Name, r.Status, r.Msg)
		}
	}
	if err != nil {
		t.Errorf("kubeconform: %v (%+v)", err, s.Summary)
	}
	if want := len(load(t)); s.Summary.Valid != want {
		t.Errorf("kubeconform found %d valid resources, want all %d manifests", s.Summary.Valid, want)
	}
}
