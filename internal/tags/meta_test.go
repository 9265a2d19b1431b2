package tags

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// encodeLikeSerf encodes tags as serf puts them in memberlist metadata.
func encodeLikeSerf(t testing.TB, m map[string]string) []byte {
	var buf bytes.Buffer
	buf.WriteByte(metaMagic)
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Domain reads the domain from serf's own encoding, whatever the other
// tags, their number and their lengths (fixstr, str16, map16 formats).
func TestDomainFromSerfEncoding(t *testing.T) {
	long := strings.Repeat("x", 300)
	many := map[string]string{KeyDomain: "prod"}
	for i := range 20 {
		many[string(rune('A'+i))] = "v"
	}
	for _, m := range []map[string]string{
		{KeyDomain: "prod"},
		{KeyDomain: "prod", KeyRole: RoleWorker, KeyState: StateServing, KeySubDomain: "worker"},
		{KeyProps: long, KeyDomain: "prod", KeyEndpoints: strings.Repeat("e", 40)},
		{KeyDomain: strings.Repeat("d", 40) /* str 8 / raw 16 */},
		many, // map 16
	} {
		meta := encodeLikeSerf(t, m)
		got, ok := Domain(meta)
		if !ok || got != m[KeyDomain] {
			t.Errorf("Domain(%v) = %q, %v; want %q", m, got, ok, m[KeyDomain])
		}
		if !HasDomain(meta, m[KeyDomain]) || HasDomain(meta, m[KeyDomain]+"x") || HasDomain(meta, "") {
			t.Errorf("HasDomain wrong for %v", m)
		}
	}
}

// Metadata that is not serf's tag encoding, or holds no domain, has none,
// and a truncated encoding is never read past its end.
func TestDomainRejectsMalformed(t *testing.T) {
	full := encodeLikeSerf(t, map[string]string{KeyRole: RoleWorker, KeyDomain: "prod"})
	for name, meta := range map[string][]byte{
		"empty":          nil,
		"old role-only":  []byte("worker"),
		"no domain":      encodeLikeSerf(t, map[string]string{KeyRole: RoleWorker}),
		"not a map":      {metaMagic, 0xa3, 'a', 'b', 'c'},
		"only the magic": {metaMagic},
	} {
		if d, ok := Domain(meta); ok {
			t.Errorf("%s: Domain = %q, want none", name, d)
		}
	}
	for i := range len(full) - 1 {
		if d, ok := Domain(full[:i]); ok {
			t.Errorf("truncated to %d of %d bytes: Domain = %q, want none", i, len(full), d)
		}
	}
}

// HasDomain allocates nothing: it runs on every alive message.
func TestHasDomainAllocatesNothing(t *testing.T) {
	meta := encodeLikeSerf(t, map[string]string{KeyDomain: "prod", KeyRole: RoleWorker, KeyState: StateServing, KeySubDomain: "worker"})
	if a := testing.AllocsPerRun(100, func() { HasDomain(meta, "prod") }); a != 0 {
		t.Errorf("HasDomain: %v allocs per call", a)
	}
}

func FuzzDomain(f *testing.F) {
	f.Add(encodeLikeSerf(f, map[string]string{KeyDomain: "prod", KeyRole: RoleWorker}))
	f.Add([]byte{metaMagic, 0x81, 0xa1, 'd'})
	f.Fuzz(func(t *testing.T, meta []byte) {
		d, ok := Domain(meta)
		if ok != HasDomain(meta, d) {
			t.Fatalf("Domain = %q, %v but HasDomain disagrees", d, ok)
		}
		// Whatever go-msgpack decodes from a well-formed map, we agree.
		if len(meta) > 0 && meta[0] == metaMagic {
			var m map[string]string
			if err := codec.NewDecoderBytes(meta[1:], &codec.MsgpackHandle{}).Decode(&m); err == nil {
				if want, has := m[KeyDomain]; has && ok && d != want {
					t.Fatalf("Domain = %q, go-msgpack says %q", d, want)
				}
			}
		}
	})
}
