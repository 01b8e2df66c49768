package main

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// result is one load run against one target.
type result struct {
	name     string
	rate     float64 // units per second
	p50, p99 float64 // ms; 0 when the case has no latency figure
	units    float64 // requests, connections or GiB served in the run
	errors   int     // socket errors and non-2xx responses
	cpu      float64 // proxy CPU per unit (us, or ms per GiB); 0 = not measured
}

// units names what a case counts, for printing.
type units struct {
	rate string // "req/s"
	cpu  string // "us/req"
	per  string // "request"
	// cpuScale turns CPU seconds per unit into the printed CPU unit.
	cpuScale float64
	latency  bool
}

var (
	httpUnits = units{rate: "req/s", cpu: "us/req", per: "request", cpuScale: 1e6, latency: true}
	connUnits = units{rate: "conn/s", cpu: "us/conn", per: "connection", cpuScale: 1e6, latency: true}
	bulkUnits = units{rate: "GiB/s", cpu: "ms/GiB", per: "GiB", cpuScale: 1e3}
)

func (u units) row(r result) string {
	cpu := "-"
	if r.cpu > 0 {
		cpu = fmt.Sprintf("%.2f", r.cpu)
	}
	rate := fmt.Sprintf("%10.0f", r.rate)
	if u.rate == "GiB/s" {
		rate = fmt.Sprintf("%10.3f", r.rate)
	}
	lat := ""
	if u.latency {
		lat = fmt.Sprintf("   p50 %8.3f ms   p99 %8.3f ms", r.p50, r.p99)
	}
	errs := ""
	if r.errors > 0 {
		errs = fmt.Sprintf("   ERRORS %d", r.errors)
	}
	return fmt.Sprintf("  %-8s %s %-6s%s   CPU %8s %s%s", r.name, rate, u.rate, lat, cpu, u.cpu, errs)
}

// median takes each figure's median across runs (of an even count, the
// mean of the middle two); errors are summed.
func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		if n := len(v); n%2 == 0 {
			return (v[n/2-1] + v[n/2]) / 2
		}
		return v[len(v)/2]
	}
	errs := 0
	for _, r := range rs {
		errs += r.errors
	}
	return result{name: rs[0].name,
		rate:   pick(func(r result) float64 { return r.rate }),
		p50:    pick(func(r result) float64 { return r.p50 }),
		p99:    pick(func(r result) float64 { return r.p99 }),
		units:  pick(func(r result) float64 { return r.units }),
		cpu:    pick(func(r result) float64 { return r.cpu }),
		errors: errs}
}

var (
	reRPS     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reReqs    = regexp.MustCompile(`(\d+) requests in`)
	reLat     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	reSockErr = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// parseWrk reads wrk's --latency report.
func parseWrk(name, out string) (result, error) {
	r := result{name: name}
	m := reRPS.FindStringSubmatch(out)
	n := reReqs.FindStringSubmatch(out)
	if m == nil || n == nil {
		return r, fmt.Errorf("no figures in wrk output:\n%s", out)
	}
	r.rate, _ = strconv.ParseFloat(m[1], 64)
	r.units, _ = strconv.ParseFloat(n[1], 64)
	for _, m := range reLat.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if m[1] == "50" {
			r.p50 = v
		} else {
			r.p99 = v
		}
	}
	if m := reSockErr.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			v, _ := strconv.Atoi(s)
			r.errors += v
		}
	}
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		v, _ := strconv.Atoi(m[1])
		r.errors += v
	}
	return r, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100.0

// cpuTicks returns utime+stime of pid (its threads included).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short line", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st, nil
}
