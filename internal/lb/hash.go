package lb

import (
	"gatehouse/internal/phase"

	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// ketama is consistent hashing on a ring (libketama's scheme): every
// target owns points on a ring of 64-bit hashes, 100 per unit of weight;
// a request goes to the owner of the first point at or after its key's
// hash. When a target leaves (or is down), only the keys it owned move, to
// the next owners on the ring; the others stay where they were. Slow start
// does not apply: a key's target is fixed by the ring.
type ketama struct{ rings [2]ring }

type ring struct {
	points []uint64
	owner  []*Target
}

const pointsPerWeight = 100

func newRing(ts []*Target) ring {
	type pt struct {
		h uint64
		t *Target
	}
	var pts []pt
	for _, t := range ts {
		n := pointsPerWeight * min(t.Weight, 100)
		for i := 0; i < n; i++ {
			pts = append(pts, pt{xxhash.Sum64String(t.Addr + "-" + strconv.Itoa(i)), t})
		}
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].h < pts[j].h })
	r := ring{points: make([]uint64, len(pts)), owner: make([]*Target, len(pts))}
	for i, p := range pts {
		r.points[i], r.owner[i] = p.h, p.t
	}
	return r
}

func (k *ketama) pick(_ *Pool, _ []*Target, set int, now int64, tried *Tried, key uint64) *Target {
	r := &k.rings[set]
	n := len(r.points)
	if n == 0 {
		return nil
	}
	i := sort.Search(n, func(i int) bool { return r.points[i] >= key })
	for step := 0; step < n; step++ {
		t := r.owner[(i+step)%n]
		if usable(t, now, tried) {
			return t
		}
	}
	return nil
}

// HashKey computes the consistent_hash key of a request: spec is
// client_ip, path, header:<Name> or cookie:<name>. A missing header or
// cookie hashes the client address instead, so such requests still spread.
// A header is looked up in the verified identity first (identity headers
// are added to the upstream request last, not kept in r.Header).
func HashKey(spec string, r *http.Request, id *phase.Identity, clientIP, path string) uint64 {
	kind, name, _ := strings.Cut(spec, ":")
	switch kind {
	case "path":
		return xxhash.Sum64String(path)
	case "header":
		if vv := id.Values(http.CanonicalHeaderKey(name)); len(vv) > 0 && vv[0] != "" {
			return xxhash.Sum64String(vv[0])
		}
		if v := r.Header.Get(name); v != "" {
			return xxhash.Sum64String(v)
		}
	case "cookie":
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return xxhash.Sum64String(c.Value)
		}
	}
	return xxhash.Sum64String(clientIP)
}
