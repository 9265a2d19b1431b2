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

func TestSizeGrows(t *testing.T) {
	small := Size(map[string]string{"d": "x"})
	big := Size(map[string]string{"d": string(make([]byte, 600))})
	if small >= MaxSize || big <= MaxSize {
		t.Fatalf("sizes %d, %d", small, big)
	}
}
