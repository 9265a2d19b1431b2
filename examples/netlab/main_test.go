//go:build linux

package main

import (
	"bytes"
	"strings"
	"testing"
)

// Bad flags are refused with status 2 and a line naming the flag, before
// the lab checks for root or builds anything.
func TestBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-pattern", "4"}, "-pattern"},
		{[]string{"-recovery", "-1"}, "-recovery"},
		{[]string{"-recovery", "20", "-down", "0s"}, "-down"},
		{[]string{"-recovery", "20", "-faults", "3", "-active"}, "drop -active -faults"},
		{[]string{"-profile", "lam"}, "-profile"},
	} {
		var out, errOut bytes.Buffer
		if code := run(c.args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: status %d, stderr %q; want 2 and %q", c.args, code, errOut.String(), c.want)
		}
	}
}
