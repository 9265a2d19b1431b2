package kubernetes

import (
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerfileBuild returns the packages the Dockerfile's go build line
// builds ("./examples/worker", ...) and the directory it writes them to.
func dockerfileBuild(t *testing.T) (pkgs []string, out string) {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	build := regexp.MustCompile(`(?m)^RUN .*\bgo build\b(.*)$`).FindSubmatch(b)
	if build == nil {
		t.Fatal("Dockerfile: no RUN ... go build line")
	}
	fields := strings.Fields(string(build[1]))
	for i := 0; i < len(fields); i++ {
		switch f := fields[i]; {
		case f == "-o" && i+1 < len(fields):
			out = fields[i+1]
			i++
		case strings.HasPrefix(f, "./"):
			pkgs = append(pkgs, f)
		}
	}
	if out == "" || len(pkgs) == 0 {
		t.Fatalf("Dockerfile: go build line %q names no -o directory or no packages", build[0])
	}
	return pkgs, out
}

// TestDockerfileBuildsEveryProgram: the image holds every program the
// manifests run, and the carbon CLI, each a main package of this
// repository, copied to the directory the manifests' commands name.
func TestDockerfileBuildsEveryProgram(t *testing.T) {
	pkgs, out := dockerfileBuild(t)
	built := map[string]bool{}
	for _, p := range pkgs {
		src, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(p), "main.go"))
		if err != nil {
			t.Errorf("Dockerfile builds %s: %v", p, err)
			continue
		}
		if !regexp.MustCompile(`(?m)^package main$`).Match(src) {
			t.Errorf("Dockerfile builds %s, which is not a main package", p)
		}
		built[path.Base(p)] = true
	}
	if !slices.Contains(pkgs, "./cmd/carbon") {
		t.Errorf("Dockerfile does not build the carbon CLI (./cmd/carbon); it builds %v", pkgs)
	}
	b, _ := os.ReadFile("Dockerfile")
	copyLine := regexp.MustCompile(`(?m)^COPY --from=build ` + regexp.QuoteMeta(out) + `\s+(\S+)$`).FindSubmatch(b)
	if copyLine == nil {
		t.Fatalf("Dockerfile: no COPY --from=build %s <dir> line", out)
	}
	bin := strings.TrimSuffix(string(copyLine[1]), "/")
	for _, w := range workloads(load(t)) {
		c := w.pod.Spec.Containers[0]
		if len(c.Command) == 0 {
			continue // TestEnvironmentNamesFlags reports it
		}
		if dir, prog := path.Split(c.Command[0]); strings.TrimSuffix(dir, "/") != bin || !built[prog] {
			t.Errorf("%s runs %q; the image has %s/ with %v", w.name, c.Command[0], bin, slices.Sorted(maps.Keys(built)))
		}
	}
}
