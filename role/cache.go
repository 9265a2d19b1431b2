package role

import (
	"maps"
	"sync"
	"sync/atomic"
)

// maxCached bounds every per-method cache. Past it, results are computed
// on each call instead of cached, so a client that invents method names
// (a gRPC server with an UnknownServiceHandler sees them all) cannot grow
// memory without bound.
const maxCached = 4096

// cowMap is a copy-on-write map: lookups are one atomic load and one map
// access, with no lock and no allocation; stores copy the map. It suits
// keys that are few and read far more often than written (method names).
type cowMap[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex // serialises stores
}

func (c *cowMap[K, V]) load(k K) (v V, ok bool) {
	if p := c.m.Load(); p != nil {
		v, ok = (*p)[k]
	}
	return v, ok
}

// store adds k unless the map is full; it reports whether k is cached.
func (c *cowMap[K, V]) store(k K, v V) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next map[K]V
	if p := c.m.Load(); p != nil {
		if _, ok := (*p)[k]; ok {
			return true
		}
		if len(*p) >= maxCached {
			return false
		}
		next = make(map[K]V, len(*p)+1)
		maps.Copy(next, *p)
	} else {
		next = make(map[K]V, 1)
	}
	next[k] = v
	c.m.Store(&next)
	return true
}
