package dns

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
	"weak"

	mdns "github.com/miekg/dns"
)

// /v1/watch streams the zone's changes as Server-Sent Events: first the
// whole current zone as "added", then one event per new zone with the
// records added and removed. Update only hands the new zone's pointer to
// each watcher's bounded queue, and only when someone watches; the diff
// is computed on the watcher's own goroutine (once per pair of zones,
// shared by watchers in step). A watcher whose queue is full is dropped:
// it never slows the updater.

// Record is one record in the shape of Mesos-DNS's /v1/enumerate.
type Record struct {
	Name  string `json:"name"`
	Host  string `json:"host"`
	Rtype string `json:"rtype"`
}

// ZoneEvent is one /v1/watch event: what a new zone added and removed.
type ZoneEvent struct {
	Generation uint64   `json:"generation"`
	Added      []Record `json:"added"`
	Removed    []Record `json:"removed"`
}

const (
	// watchQueue is how many zones a watcher may fall behind by.
	watchQueue = 16
	// watchWriteTimeout bounds one event's write to a watcher.
	watchWriteTimeout = 10 * time.Second
	// watchKeepalive is how often an idle stream gets a comment line.
	watchKeepalive = 30 * time.Second
)

type watchHub struct {
	mu       sync.Mutex
	watchers map[*watcher]struct{}
}

type watcher struct {
	zones chan *Records
	gone  chan struct{} // closed when the hub drops the watcher
}

func newWatchHub() *watchHub { return &watchHub{watchers: map[*watcher]struct{}{}} }

// publish queues z for every watcher, dropping those that are full.
func (h *watchHub) publish(z *Records) (dropped int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		select {
		case w.zones <- z:
		default:
			delete(h.watchers, w)
			close(w.gone)
			dropped++
		}
	}
	return dropped
}

// add registers a watcher and returns it with the zone it starts from,
// read under the lock so no zone published after it is missed.
func (h *watchHub) add(current func() *Records) (*watcher, *Records) {
	w := &watcher{zones: make(chan *Records, watchQueue), gone: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.watchers[w] = struct{}{}
	return w, current()
}

func (h *watchHub) remove(w *watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.watchers[w]; ok {
		delete(h.watchers, w)
		close(w.gone)
	}
}

func (h *watchHub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.watchers)
}

// records returns the records of one name in /v1/enumerate shape.
func records(name string, rrs []mdns.RR) []Record {
	out := make([]Record, 0, len(rrs))
	for _, rr := range rrs {
		data := strings.TrimPrefix(rr.String(), rr.Header().String())
		out = append(out, Record{Name: name, Host: data, Rtype: mdns.TypeToString[rr.Header().Rrtype]})
	}
	return out
}

// Diff returns the records of b that a lacks (added) and of a that b
// lacks (removed), each sorted by name, type and data. A nil a is empty.
func Diff(a, b *Records) (added, removed []Record) {
	added, removed = []Record{}, []Record{}
	var an map[string][]mdns.RR
	if a != nil {
		an = a.names
	}
	for name, bs := range b.names {
		as := an[name]
		if as == nil {
			added = append(added, records(name, bs)...)
			continue
		}
		ad, rm := diffSet(name, as, bs)
		added, removed = append(added, ad...), append(removed, rm...)
	}
	for name, as := range an {
		if b.names[name] == nil {
			removed = append(removed, records(name, as)...)
		}
	}
	sortRecords(added)
	sortRecords(removed)
	return added, removed
}

// diffSet compares the records of one name.
func diffSet(name string, a, b []mdns.RR) (added, removed []Record) {
	ar, br := records(name, a), records(name, b)
	in := func(set []Record) map[Record]bool {
		m := make(map[Record]bool, len(set))
		for _, r := range set {
			m[r] = true
		}
		return m
	}
	am, bm := in(ar), in(br)
	for _, r := range br {
		if !am[r] {
			added = append(added, r)
		}
	}
	for _, r := range ar {
		if !bm[r] {
			removed = append(removed, r)
		}
	}
	return added, removed
}

func sortRecords(rs []Record) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Name != rs[j].Name {
			return rs[i].Name < rs[j].Name
		}
		if rs[i].Rtype != rs[j].Rtype {
			return rs[i].Rtype < rs[j].Rtype
		}
		return rs[i].Host < rs[j].Host
	})
}

// diffMemo keeps the last encoded step into a zone so watchers in step
// compute it once. It points to the zone it came from weakly: a strong
// pointer would chain every zone to its predecessor for ever.
type diffMemo struct {
	mu   sync.Mutex
	from weak.Pointer[Records]
	data []byte
}

// event returns the encoded event for the step from prev to z; from nil,
// the whole zone, which is not kept (it is as big as the zone).
func (z *Records) event(prev *Records) []byte {
	encode := func() []byte {
		added, removed := Diff(prev, z)
		data, _ := json.Marshal(ZoneEvent{Generation: z.Generation, Added: added, Removed: removed})
		return data
	}
	if prev == nil {
		return encode()
	}
	m := &z.cache.diff
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil || m.from.Value() != prev {
		m.from, m.data = weak.Make(prev), encode()
	}
	return m.data
}

// serveWatch is GET /v1/watch.
func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	wt, prev := s.watch.add(s.zone.Load)
	defer s.watch.remove(wt)
	s.metrics.watchers.Set(float64(s.watch.count()))
	defer func() { s.metrics.watchers.Set(float64(s.watch.count())) }()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(gen uint64, data []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout))
		if _, err := fmt.Fprintf(w, "id: %d\ndata: %s\n\n", gen, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(prev.Generation, prev.event(nil)) {
		return
	}
	keepalive := time.NewTicker(watchKeepalive)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-wt.gone:
			s.metrics.watchDropped.Inc()
			return
		case <-keepalive.C:
			_ = rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout))
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case z := <-wt.zones:
			if z == prev {
				continue
			}
			if !send(z.Generation, z.event(prev)) {
				return
			}
			prev = z
		}
	}
}
