package tags

import (
	"reflect"
	"testing"
)

func TestMapRoundTrip(t *testing.T) {
	in := map[string]string{"grpc": "10.0.0.5:9443", "http": "other.example:80", "a&b": "x=y z"}
	s := EncodeMap(in, "10.0.0.5")
	out, err := DecodeMap(s, "10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: got %v want %v (encoded %q)", out, in, s)
	}
	if want := "a%26b=x%3Dy+z&grpc=%3A9443&http=other.example%3A80"; s != want {
		t.Fatalf("encoded %q, want %q", s, want)
	}
}

func TestEpoch(t *testing.T) {
	for _, e := range []uint64{0, 1, 1 << 40, ^uint64(0)} {
		got, err := DecodeEpoch(EncodeEpoch(e))
		if err != nil || got != e {
			t.Fatalf("epoch %d -> %d, %v", e, got, err)
		}
	}
	if _, err := DecodeEpoch("!"); err == nil {
		t.Fatal("malformed epoch accepted")
	}
}

func TestSignedClaim(t *testing.T) {
	seal, sig := []byte("0123456789abcdef"), make([]byte, 64)
	v := EncodeSignedClaim(1<<40|7, seal, sig)
	if len(v) > 120 {
		t.Fatalf("a signed claim takes %d bytes of the %d a member's tags may", len(v), MaxSize)
	}
	e, gotSeal, gotSig, err := DecodeSignedClaim(v)
	if err != nil || e != 1<<40|7 || !reflect.DeepEqual(gotSeal, seal) || !reflect.DeepEqual(gotSig, sig) {
		t.Fatalf("round trip of %q: %d %x %x %v", v, e, gotSeal, gotSig, err)
	}
	for _, bad := range []string{"", "12", "12.abc", "!.AAAA.AAAA", "12.*.AAAA", "12.AAAA.*"} {
		if _, _, _, err := DecodeSignedClaim(bad); err == nil {
			t.Errorf("malformed signed claim %q accepted", bad)
		}
	}
}

func TestSizeGrows(t *testing.T) {
	small := Size(map[string]string{"d": "x"})
	big := Size(map[string]string{"d": string(make([]byte, 600))})
	if small >= MaxSize || big <= MaxSize {
		t.Fatalf("sizes %d, %d", small, big)
	}
}
