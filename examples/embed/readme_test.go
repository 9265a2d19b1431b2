package main

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEShowsThisFile keeps the README's embedding example true: every
// region of main.go between "// README:begin" and "// README:end" must appear
// in README.md as written here (one tab of indentation removed), so the
// README shows code that compiles and that TestRun runs.
func TestREADMEShowsThisFile(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var regions []string
	var cur []string
	in := false
	for _, line := range strings.Split(string(src), "\n") {
		switch strings.TrimSpace(line) {
		case "// README:begin":
			in, cur = true, nil
			continue
		case "// README:end":
			in = false
			regions = append(regions, strings.Join(cur, "\n"))
			continue
		}
		if in {
			cur = append(cur, strings.TrimPrefix(line, "\t"))
		}
	}
	if len(regions) == 0 {
		t.Fatal("main.go has no README regions")
	}
	for i, r := range regions {
		if !strings.Contains(string(readme), r) {
			t.Errorf("README.md does not contain region %d of examples/embed/main.go verbatim:\n%s", i+1, r)
		}
	}
}
