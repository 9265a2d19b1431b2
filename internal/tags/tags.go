package tags

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// MaxSize is memberlist's cap on a member's metadata (memberlist.MetaMaxSize).
const MaxSize = 512

// Keys of the tag map. One letter each, to leave room for user data.
const (
	KeyDomain    = "d"
	KeySubDomain = "s"
	KeyRole      = "r" // w: worker, m: manager (Active/Passive), M: manager (Active/Active), o: observer, O: observer acting for the managers
	KeyState     = "z" // 0: starting, 1: serving, 2: draining
	KeyClaim     = "a" // active claim epoch in base 36; absent when not claiming
	KeyEndpoints = "e" // url-encoded name=addr pairs; addr ":port" means the member's own host
	KeyProps     = "p" // url-encoded properties
	KeyIdentity  = "i" // port of the identity endpoint (trust on), base 10
	KeyClaimSig  = "c" // the signed claim (trust on): "<epoch>.<seal>.<signature>", epoch in base 36, the others unpadded base64
	KeyClaimKey  = "k" // the secret that opens the seal of c, unpadded base64; present only while claiming
	KeyRevision  = "v" // artifact revision the member runs, "<epoch>-<seq>" in base 36; absent when it reports none
)

// Values of KeyRole.
const (
	RoleWorker        = "w"
	RoleManager       = "m"
	RoleManagerActive = "M"
	RoleObserver      = "o"
	RoleObserverMgr   = "O"
)

// Values of KeyState.
const (
	StateStarting = "0"
	StateServing  = "1"
	StateDraining = "2"
)

// Size returns the number of bytes serf will use to carry t, counted the
// way serf encodes tags (a magic byte and msgpack).
func Size(t map[string]string) int {
	var buf bytes.Buffer
	buf.WriteByte(0xff)
	enc := codec.NewEncoder(&buf, &codec.MsgpackHandle{})
	if err := enc.Encode(t); err != nil {
		return MaxSize + 1
	}
	return buf.Len()
}

// EncodeMap encodes m as a compact, sorted, url-encoded list. If host is not
// empty, values of the form host:port are shortened to :port.
func EncodeMap(m map[string]string, host string) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		v := m[k]
		if host != "" {
			if h, p, err := net.SplitHostPort(v); err == nil && h == host {
				v = ":" + p
			}
		}
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(v))
	}
	return b.String()
}

// DecodeMap reverses EncodeMap: values ":port" get host back.
func DecodeMap(s, host string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	vals, err := url.ParseQuery(s)
	if err != nil {
		return nil, fmt.Errorf("tags: malformed map %q: %w", s, err)
	}
	m := make(map[string]string, len(vals))
	for k, v := range vals {
		if len(v) == 0 {
			continue
		}
		val := v[0]
		if host != "" && strings.HasPrefix(val, ":") {
			val = net.JoinHostPort(host, val[1:])
		}
		m[k] = val
	}
	return m, nil
}

// EncodeEpoch formats an epoch compactly (base 36).
func EncodeEpoch(e uint64) string { return strconv.FormatUint(e, 36) }

// EncodeSignedClaim writes the value of KeyClaimSig.
func EncodeSignedClaim(epoch uint64, seal, sig []byte) string {
	return EncodeEpoch(epoch) + "." + base64.RawStdEncoding.EncodeToString(seal) + "." + base64.RawStdEncoding.EncodeToString(sig)
}

// DecodeSignedClaim parses a value written by EncodeSignedClaim.
func DecodeSignedClaim(s string) (epoch uint64, seal, sig []byte, err error) {
	e, rest, ok1 := strings.Cut(s, ".")
	sl, sg, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return 0, nil, nil, fmt.Errorf("signed claim %q: want <epoch>.<seal>.<signature>", s)
	}
	if epoch, err = DecodeEpoch(e); err != nil {
		return 0, nil, nil, fmt.Errorf("signed claim: epoch %q: %w", e, err)
	}
	if seal, err = base64.RawStdEncoding.DecodeString(sl); err != nil {
		return 0, nil, nil, fmt.Errorf("signed claim: seal: %w", err)
	}
	if sig, err = base64.RawStdEncoding.DecodeString(sg); err != nil {
		return 0, nil, nil, fmt.Errorf("signed claim: signature: %w", err)
	}
	return epoch, seal, sig, nil
}

// DecodeEpoch parses an epoch written by EncodeEpoch; "" is 0.
func DecodeEpoch(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.ParseUint(s, 36, 64)
}
