package tags

// serf carries a member's tags in memberlist's metadata as a magic byte
// then the msgpack map (github.com/hashicorp/go-msgpack, MsgpackHandle).
const metaMagic = 255

// Domain returns the KeyDomain tag of a member from its memberlist
// metadata, without decoding the rest: memberlist asks whether to accept a
// member on every alive message it receives, duplicates included, and a
// full decode there (serf's) cost a quarter of the CPU of 100 nodes
// joining at once. ok is false when meta is not serf's tag encoding or
// holds no domain. The result shares no memory with meta.
func Domain(meta []byte) (domain string, ok bool) {
	v, ok := lookup(meta, KeyDomain)
	if !ok {
		return "", false
	}
	return string(v), true
}

// HasDomain reports whether meta's KeyDomain tag is domain, without
// allocating.
func HasDomain(meta []byte, domain string) bool {
	v, ok := lookup(meta, KeyDomain)
	return ok && string(v) == domain
}

// lookup returns the value of key in serf-encoded tags: the last one if the
// key repeats, as a decode into a map keeps. Malformed tags have none.
func lookup(meta []byte, key string) ([]byte, bool) {
	if len(meta) == 0 || meta[0] != metaMagic {
		return nil, false
	}
	b := meta[1:]
	n, b, ok := mapHeader(b)
	if !ok {
		return nil, false
	}
	var found []byte
	has := false
	for range n {
		var k, v []byte
		if k, b, ok = str(b); !ok {
			return nil, false
		}
		if v, b, ok = str(b); !ok {
			return nil, false
		}
		if string(k) == key {
			found, has = v, true
		}
	}
	return found, has
}

func mapHeader(b []byte) (int, []byte, bool) {
	if len(b) == 0 {
		return 0, nil, false
	}
	switch c := b[0]; {
	case c&0xf0 == 0x80: // fixmap
		return int(c & 0x0f), b[1:], true
	case c == 0xde: // map 16
		if len(b) < 3 {
			return 0, nil, false
		}
		return int(b[1])<<8 | int(b[2]), b[3:], true
	case c == 0xdf: // map 32
		if len(b) < 5 {
			return 0, nil, false
		}
		return int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4]), b[5:], true
	}
	return 0, nil, false
}

// str reads a msgpack string or byte string (raw/str or bin formats).
func str(b []byte) (s, rest []byte, ok bool) {
	if len(b) == 0 {
		return nil, nil, false
	}
	var n, h int
	switch c := b[0]; {
	case c&0xe0 == 0xa0: // fixstr
		n, h = int(c&0x1f), 1
	case c == 0xd9 || c == 0xc4: // str 8, bin 8
		if len(b) < 2 {
			return nil, nil, false
		}
		n, h = int(b[1]), 2
	case c == 0xda || c == 0xc5: // str 16, bin 16
		if len(b) < 3 {
			return nil, nil, false
		}
		n, h = int(b[1])<<8|int(b[2]), 3
	case c == 0xdb || c == 0xc6: // str 32, bin 32
		if len(b) < 5 {
			return nil, nil, false
		}
		n, h = int(b[1])<<24|int(b[2])<<16|int(b[3])<<8|int(b[4]), 5
	default:
		return nil, nil, false
	}
	if n < 0 || len(b)-h < n {
		return nil, nil, false
	}
	return b[h : h+n], b[h+n:], true
}
