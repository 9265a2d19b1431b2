package role_test

import (
	"errors"
	"testing"

	"github.com/carbonkit/carbon/role"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]role.Role{"worker": role.Worker, " Manager ": role.Manager, "WORKER": role.Worker} {
		got, err := role.Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "mgr", "observer", "workers"} {
		if _, err := role.Parse(in); !errors.Is(err, role.ErrUnknownRole) {
			t.Errorf("Parse(%q) error = %v; want ErrUnknownRole", in, err)
		}
	}
}

func TestStatic(t *testing.T) {
	if s := role.Static(role.Worker); s.Writable() || s.Role() != role.Worker {
		t.Errorf("Static(Worker) = %v writable=%v", s.Role(), s.Writable())
	}
	if s := role.Static(role.Manager); !s.Writable() || s.Role() != role.Manager {
		t.Errorf("Static(Manager) = %v writable=%v", s.Role(), s.Writable())
	}
	if s := role.Static(role.None); s.Writable() {
		t.Errorf("Static(None) writable")
	}
}
