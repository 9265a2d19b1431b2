package carboncli

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
)

func checkKeys(args []string) error {
	switch args[0] {
	case "list":
		if len(args) != 1 {
			return errors.New("keys list takes no argument")
		}
		return nil
	case "install", "use", "remove":
		if len(args) != 2 {
			return fmt.Errorf("keys %s needs a KEY (base64 of 16, 24 or 32 bytes)", args[0])
		}
		k, err := base64.StdEncoding.DecodeString(args[1])
		if err != nil {
			return fmt.Errorf("KEY is not base64: %v", err)
		}
		if l := len(k); l != 16 && l != 24 && l != 32 {
			return fmt.Errorf("KEY is %d bytes, want 16, 24 or 32", l)
		}
		return nil
	}
	return fmt.Errorf("unknown keys operation %q (list, install, use, remove)", args[0])
}

// KeysJSON is the output of keys list -json.
type KeysJSON struct {
	// Keys maps each installed key (base64) to the number of members that
	// hold it.
	Keys map[string]int `json:"keys"`
}

// keys lists or rotates the gossip keys.
func keys(ctx context.Context, e *env) error {
	op := e.o.args[0]
	if op == "list" {
		ks, err := e.n.Keys(ctx)
		if err != nil {
			return err
		}
		if e.o.json {
			return e.json(KeysJSON{Keys: ks})
		}
		var rows [][]string
		for k, c := range ks {
			rows = append(rows, []string{k, fmt.Sprint(c)})
		}
		slices.SortFunc(rows, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
		e.table("KEY\tMEMBERS", rows)
		return nil
	}
	k, _ := base64.StdEncoding.DecodeString(e.o.args[1])
	var err error
	switch op {
	case "install":
		err = e.n.InstallKey(ctx, k)
	case "use":
		// This tool's own observer holds only -key; installing first gives
		// it the key too (and is a no-op on members that hold it), so the
		// use does not fail on the tool itself.
		if err = e.n.InstallKey(ctx, k); err == nil {
			err = e.n.UseKey(ctx, k)
		}
	case "remove":
		err = e.n.RemoveKey(ctx, k)
	}
	if err != nil {
		return err
	}
	if e.o.json {
		return e.json(map[string]string{"op": op, "key": e.o.args[1]})
	}
	fmt.Fprintf(e.out, "%s: done on every member\n", op)
	return nil
}
