package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestBadUpstreamTimeout(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		env  string
	}{
		{"flag", []string{"-upstream-timeout", "soon"}, ""},
		{"negative", []string{"-upstream-timeout", "-1s"}, ""},
		{"env", nil, "later"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.env != "" {
				t.Setenv("CARBON_UPSTREAM_TIMEOUT", c.env)
			}
			var out, errOut bytes.Buffer
			if code := run(c.args, &out, &errOut); code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, errOut.String())
			}
			if !strings.Contains(errOut.String(), "-upstream-timeout") {
				t.Fatalf("stderr %q does not name the flag", errOut.String())
			}
		})
	}
}
