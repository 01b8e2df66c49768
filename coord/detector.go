package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/keelhq/keel/api/mesos"
)

const (
	// detectorSession is the detector's ZooKeeper session timeout; it
	// holds no ephemeral node, so this only bounds how fast it notices a
	// dead server.
	detectorSession = 10 * time.Second
	// callTimeout bounds every single request of the detector.
	callTimeout = 10 * time.Second
	// pollInterval is how often a host-list detector asks the masters.
	pollInterval = time.Second
)

// Detector follows which master leads, from ZooKeeper or from a list of
// masters, and tells its users when that changes.
//
// With a zk:// spec it watches the children of the path and reads the
// lowest json.info_ node, like Mesos' own detectors; while ZooKeeper is
// unreachable it keeps reporting the last leader it saw. With a host list
// ("host:port,host:port") it asks each master in turn, every second, for
// GET /master/redirect and takes the first 307's Location as the leader;
// when no master answers so, no leader is known.
type Detector struct {
	servers []string // zk:// mode
	path    string
	masters []string // host list mode
	log     *slog.Logger
	client  *http.Client

	mu     sync.Mutex
	leader mesos.MasterInfo
	known  bool
	// masterInfos are all contenders, leader first (zk:// mode).
	masterInfos []mesos.MasterInfo
	changed     chan struct{}
}

// NewDetector parses spec, zk://host:port,.../path or host:port,host:port.
// Nothing happens until Run.
func NewDetector(spec string, log *slog.Logger) (*Detector, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Detector{log: log.With("component", "coord", "detector", spec), changed: make(chan struct{})}
	if strings.HasPrefix(spec, "zk://") {
		servers, path, err := ParseZK(spec)
		if err != nil {
			return nil, err
		}
		d.servers, d.path = servers, path
		return d, nil
	}
	for _, h := range strings.Split(spec, ",") {
		h = strings.TrimSpace(strings.TrimPrefix(h, "http://"))
		if _, _, err := net.SplitHostPort(h); err != nil {
			return nil, fmt.Errorf("coord: master %q is not host:port: %w", h, err)
		}
		d.masters = append(d.masters, h)
	}
	d.client = &http.Client{
		Timeout: 2 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return d, nil
}

// Run follows the leader until ctx ends; it returns nil then.
func (d *Detector) Run(ctx context.Context) error {
	if d.masters != nil {
		return d.poll(ctx)
	}
	for {
		dctx, cancel := context.WithTimeout(ctx, callTimeout)
		conn, _, err := dial(dctx, d.servers, detectorSession, d.log, nil)
		cancel()
		if err == nil {
			err = d.follow(ctx, conn)
			conn.Close()
		}
		if ctx.Err() != nil {
			return nil
		}
		d.log.Warn("leader detection interrupted", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Duration(500+rand.IntN(500)) * time.Millisecond):
		}
	}
}

// follow watches the election nodes on conn until an error.
func (d *Detector) follow(ctx context.Context, conn *zk.Conn) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		children, watch, err := childrenW(cctx, conn, d.path)
		if errors.Is(err, zk.ErrNoNode) {
			// No master has ever campaigned here: wait for the path.
			type res struct {
				ok bool
				w  <-chan zk.Event
			}
			var r res
			r, err = call(cctx, func() (res, error) {
				ok, _, w, err := conn.ExistsW(d.path)
				return res{ok, w}, err
			})
			if err == nil && r.ok {
				cancel()
				continue // created meanwhile: list it
			}
			watch = r.w
			if err == nil {
				d.set(mesos.MasterInfo{}, false)
			}
		} else if err == nil {
			err = d.readLeader(cctx, conn, Contenders(children))
		}
		cancel()
		if errors.Is(err, zk.ErrNoNode) {
			continue // the leader's node vanished as we read it
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case ev := <-watch:
			if ev.Err != nil {
				return fmt.Errorf("coord: watch %s: %w", d.path, ev.Err)
			}
		}
	}
}

func (d *Detector) readLeader(ctx context.Context, conn *zk.Conn, contenders []string) error {
	if len(contenders) == 0 {
		d.set(mesos.MasterInfo{}, false)
		return nil
	}
	// Every contender's node: the leader first, then the standbys, in
	// sequence order (Mesos-DNS's master.mesos lists them all).
	var all []mesos.MasterInfo
	for i, c := range contenders {
		node := d.path + "/" + c
		data, err := call(ctx, func() ([]byte, error) {
			b, _, err := conn.Get(node)
			return b, err
		})
		if err != nil {
			if i > 0 && errors.Is(err, zk.ErrNoNode) {
				continue // a standby left as we read
			}
			return err
		}
		var info mesos.MasterInfo
		if err := json.Unmarshal(data, &info); err != nil {
			if i == 0 {
				return fmt.Errorf("coord: leader node %s: %w", node, err)
			}
			continue
		}
		all = append(all, info)
	}
	d.setMasters(all)
	d.set(all[0], true)
	return nil
}

// poll asks the masters of a host list for the leader every pollInterval.
func (d *Detector) poll(ctx context.Context) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		info, ok := d.ask(ctx)
		d.set(info, ok)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ask returns the leader named by the first master that redirects.
func (d *Detector) ask(ctx context.Context) (mesos.MasterInfo, bool) {
	for _, m := range d.masters {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m+"/master/redirect", nil)
		if err != nil {
			continue
		}
		resp, err := d.client.Do(req)
		if err != nil {
			d.log.Debug("master does not answer", "master", m, "err", err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect {
			continue
		}
		if info, ok := infoFromLocation(resp.Header.Get("Location")); ok {
			return info, true
		}
	}
	return mesos.MasterInfo{}, false
}

// infoFromLocation reads a /master/redirect Location ("//host:port" as
// Mesos writes it, or "http://host:port/...").
func infoFromLocation(loc string) (mesos.MasterInfo, bool) {
	u, err := url.Parse(loc)
	if err != nil || u.Host == "" {
		return mesos.MasterInfo{}, false
	}
	host, p, err := net.SplitHostPort(u.Host)
	if err != nil {
		return mesos.MasterInfo{}, false
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return mesos.MasterInfo{}, false
	}
	info := mesos.MasterInfo{Hostname: host, Port: port, Address: &mesos.Address{Hostname: host, Port: port}}
	if ip := net.ParseIP(host); ip != nil {
		info.IP = mesos.IPv4ToUint32(ip)
		info.Address.IP = host
	}
	return info, true
}

func (d *Detector) set(info mesos.MasterInfo, known bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if known == d.known && (!known || (info.ID == d.leader.ID && MasterURL(info) == MasterURL(d.leader))) {
		return
	}
	d.leader, d.known = info, known
	if known {
		d.log.Info("leader changed", "id", info.ID, "url", MasterURL(info))
	} else {
		d.log.Info("no leader")
	}
	close(d.changed)
	d.changed = make(chan struct{})
}

// setMasters records every known master, leader first.
func (d *Detector) setMasters(all []mesos.MasterInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	same := len(all) == len(d.masterInfos)
	for i := 0; same && i < len(all); i++ {
		same = all[i].ID == d.masterInfos[i].ID && MasterURL(all[i]) == MasterURL(d.masterInfos[i])
	}
	if same {
		return
	}
	d.masterInfos = all
	close(d.changed)
	d.changed = make(chan struct{})
}

// Masters returns every master taking part in the election, the leader
// first (with a host list: the leader only).
func (d *Detector) Masters() []mesos.MasterInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.masterInfos != nil {
		return append([]mesos.MasterInfo(nil), d.masterInfos...)
	}
	if d.known {
		return []mesos.MasterInfo{d.leader}
	}
	return nil
}

// Leader returns the current leader, if one is known.
func (d *Detector) Leader() (mesos.MasterInfo, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.leader, d.known
}

// Changed returns a channel that is closed at the next change of leader
// (including to and from "none") or of the set of masters. Take it before
// reading Leader or Masters to miss nothing.
func (d *Detector) Changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

// LeaderURL blocks until a leader is known (or ctx ends, ErrNoLeader) and
// returns its "http://host:port".
func (d *Detector) LeaderURL(ctx context.Context) (string, error) {
	for {
		ch := d.Changed()
		if info, ok := d.Leader(); ok {
			return MasterURL(info), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %w", ErrNoLeader, context.Cause(ctx))
		case <-ch:
		}
	}
}

// MasterURL is "http://host:port" of a master: its address's IP, else its
// hostname, else the ip field.
func MasterURL(info mesos.MasterInfo) string {
	host, port := info.Hostname, info.Port
	if a := info.Address; a != nil {
		switch {
		case a.IP != "":
			host = a.IP
		case a.Hostname != "":
			host = a.Hostname
		}
		if a.Port != 0 {
			port = a.Port
		}
	}
	if host == "" && info.IP != 0 {
		ip := info.IP
		host = net.IPv4(byte(ip), byte(ip>>8), byte(ip>>16), byte(ip>>24)).String()
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port))
}
