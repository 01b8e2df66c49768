package agentd

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Resource isolation of process tasks, as Mesos' cgroups/cpu and
// cgroups/mem isolators do it: each task gets a cgroup under
// <hierarchy>/<root>/<container> (v1: one per controller, e.g.
// /sys/fs/cgroup/memory/keel/<container>; v2: one unified cgroup) with
// CPU shares of cpus*1024 (v2: the matching cpu.weight) and a hard memory
// limit of its mem. The task's process enters its cgroup before it runs
// the task's command (see gateScript), an OOM kill in the cgroup fails the
// task with REASON_CONTAINER_LIMITATION_MEMORY, and the cgroup is removed
// when the task ends. posix/cpu,posix/mem isolates nothing.

// Mesos' isolation names.
const (
	isolationCgroupsCPU = "cgroups/cpu"
	isolationCgroupsMem = "cgroups/mem"
	isolationPosixCPU   = "posix/cpu"
	isolationPosixMem   = "posix/mem"
)

// reasonContainerLimitationMemory is Mesos' reason for a task killed by
// its memory limit.
const reasonContainerLimitationMemory = "REASON_CONTAINER_LIMITATION_MEMORY"

// Mesos' floors: a task gets at least 2 CPU shares and 32 MiB of memory.
const (
	cpuSharesPerCPU = 1024
	minCPUShares    = 2
	minMemoryBytes  = 32 << 20
)

// isolation is what the agent enforces, parsed from Mesos' --isolation.
type isolation struct {
	cpu, mem bool
}

// parseIsolation reads a comma-separated --isolation value. "" is
// returned as auto (cgroups when available) by the caller.
func parseIsolation(s string) (isolation, error) {
	var iso isolation
	for _, p := range strings.Split(s, ",") {
		switch p = strings.TrimSpace(p); p {
		case "":
		case isolationCgroupsCPU:
			iso.cpu = true
		case isolationCgroupsMem:
			iso.mem = true
		case isolationPosixCPU, isolationPosixMem:
		default:
			return isolation{}, fmt.Errorf("agentd: config: unknown isolator %q (want cgroups/cpu, cgroups/mem, posix/cpu or posix/mem)", p)
		}
	}
	return iso, nil
}

func (iso isolation) String() string {
	var out []string
	if iso.cpu {
		out = append(out, isolationCgroupsCPU)
	} else {
		out = append(out, isolationPosixCPU)
	}
	if iso.mem {
		out = append(out, isolationCgroupsMem)
	} else {
		out = append(out, isolationPosixMem)
	}
	return strings.Join(out, ",")
}

// cgroupSet is the agent's cgroups: which version, where and what it
// enforces.
type cgroupSet struct {
	v2        bool
	hierarchy string // e.g. /sys/fs/cgroup
	root      string // e.g. keel
	iso       isolation
}

// detectCgroups finds the cgroup version mounted at hierarchy: v2 when
// its root has cgroup.controllers, else v1 with one directory per
// controller.
func detectCgroups(hierarchy string) (v2 bool, err error) {
	if _, err := os.Stat(filepath.Join(hierarchy, "cgroup.controllers")); err == nil {
		return true, nil
	}
	for _, c := range []string{"cpu", "memory"} {
		if _, err := os.Stat(filepath.Join(hierarchy, c, "cgroup.procs")); err != nil {
			return false, fmt.Errorf("agentd: cgroups: no v2 hierarchy and no v1 %s controller at %s", c, hierarchy)
		}
	}
	return false, nil
}

// newCgroupSet prepares the root cgroup(s) under hierarchy for iso.
func newCgroupSet(hierarchy, root string, iso isolation) (*cgroupSet, error) {
	if root == "" || strings.Contains(root, "..") || filepath.IsAbs(root) {
		return nil, fmt.Errorf("agentd: cgroups: bad root %q", root)
	}
	v2, err := detectCgroups(hierarchy)
	if err != nil {
		return nil, err
	}
	s := &cgroupSet{v2: v2, hierarchy: hierarchy, root: root, iso: iso}
	if v2 {
		if err := s.prepareV2(); err != nil {
			return nil, err
		}
		return s, nil
	}
	for _, c := range s.controllers() {
		if err := os.MkdirAll(filepath.Join(hierarchy, c, root), 0o755); err != nil {
			return nil, fmt.Errorf("agentd: cgroups: %w", err)
		}
	}
	return s, nil
}

// prepareV2 creates the root cgroup and delegates the controllers to it
// and to its children.
func (s *cgroupSet) prepareV2() error {
	b, err := os.ReadFile(filepath.Join(s.hierarchy, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("agentd: cgroups: %w", err)
	}
	have := strings.Fields(string(b))
	var enable []string
	for _, c := range s.controllers() {
		if !slices.Contains(have, c) {
			return fmt.Errorf("agentd: cgroups: controller %s not available in %s", c, s.hierarchy)
		}
		enable = append(enable, "+"+c)
	}
	dir := filepath.Join(s.hierarchy, s.root)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("agentd: cgroups: %w", err)
	}
	if len(enable) == 0 {
		return nil
	}
	for _, d := range []string{s.hierarchy, dir} {
		if err := writeCgroupFile(filepath.Join(d, "cgroup.subtree_control"), strings.Join(enable, " ")); err != nil {
			return fmt.Errorf("agentd: cgroups: enable %s in %s: %w", strings.Join(enable, " "), d, err)
		}
	}
	return nil
}

// controllers names the controllers iso needs (v1 directories; v2
// controller names are the same).
func (s *cgroupSet) controllers() []string {
	var out []string
	if s.iso.cpu {
		out = append(out, "cpu")
	}
	if s.iso.mem {
		out = append(out, "memory")
	}
	return out
}

func (s *cgroupSet) describe() string {
	v := "v1"
	if s.v2 {
		v = "v2"
	}
	return v
}

// cgroup is one task's cgroup.
type cgroup struct {
	set      *cgroupSet
	name     string
	memLimit uint64 // bytes; 0 without cgroups/mem
}

// dirs are the cgroup's directories, one per v1 controller or the one v2
// cgroup.
func (c *cgroup) dirs() []string {
	s := c.set
	if s.v2 {
		return []string{filepath.Join(s.hierarchy, s.root, c.name)}
	}
	var out []string
	for _, ctl := range s.controllers() {
		out = append(out, filepath.Join(s.hierarchy, ctl, s.root, c.name))
	}
	return out
}

// memDir is the directory holding the memory controller's files.
func (c *cgroup) memDir() string {
	s := c.set
	if s.v2 {
		return filepath.Join(s.hierarchy, s.root, c.name)
	}
	return filepath.Join(s.hierarchy, "memory", s.root, c.name)
}

// cpuShares is Mesos' CPU share for cpus.
func cpuShares(cpus float64) uint64 {
	return max(uint64(cpus*cpuSharesPerCPU), minCPUShares)
}

// cpuWeight maps v1 shares [2, 262144] onto v2 weights [1, 10000], the
// conversion the kernel documentation and OCI runtimes use.
func cpuWeight(shares uint64) uint64 {
	shares = min(max(shares, 2), 262144)
	return 1 + (shares-2)*9999/262142
}

// memLimitBytes is the hard limit for mem MiB.
func memLimitBytes(memMiB float64) uint64 {
	return max(uint64(memMiB*(1<<20)), minMemoryBytes)
}

// create makes the cgroup of a task with cpus and mem (MiB) and sets its
// limits. On error nothing is left behind.
func (s *cgroupSet) create(name string, cpus, memMiB float64) (*cgroup, error) {
	c := &cgroup{set: s, name: name}
	for _, d := range c.dirs() {
		if err := os.Mkdir(d, 0o755); err != nil {
			c.remove()
			return nil, fmt.Errorf("agentd: cgroups: %w", err)
		}
	}
	var writes [][2]string
	if s.iso.cpu {
		shares := cpuShares(cpus)
		if s.v2 {
			writes = append(writes, [2]string{filepath.Join(c.dirs()[0], "cpu.weight"), strconv.FormatUint(cpuWeight(shares), 10)})
		} else {
			writes = append(writes, [2]string{filepath.Join(s.hierarchy, "cpu", s.root, name, "cpu.shares"), strconv.FormatUint(shares, 10)})
		}
	}
	if s.iso.mem {
		c.memLimit = memLimitBytes(memMiB)
		lim := strconv.FormatUint(c.memLimit, 10)
		if s.v2 {
			writes = append(writes, [2]string{filepath.Join(c.memDir(), "memory.max"), lim})
			// No swap: a task over its limit is OOM-killed rather than
			// swapped out (the file is absent without swap accounting).
			if _, err := os.Stat(filepath.Join(c.memDir(), "memory.swap.max")); err == nil {
				writes = append(writes, [2]string{filepath.Join(c.memDir(), "memory.swap.max"), "0"})
			}
		} else {
			writes = append(writes, [2]string{filepath.Join(c.memDir(), "memory.limit_in_bytes"), lim},
				[2]string{filepath.Join(c.memDir(), "memory.soft_limit_in_bytes"), lim})
		}
	}
	for _, w := range writes {
		if err := writeCgroupFile(w[0], w[1]); err != nil {
			c.remove()
			return nil, fmt.Errorf("agentd: cgroups: %w", err)
		}
	}
	return c, nil
}

// open returns the cgroup name of a task found again after a restart.
func (s *cgroupSet) open(name string) *cgroup {
	c := &cgroup{set: s, name: name}
	if s.iso.mem {
		if b, err := os.ReadFile(filepath.Join(c.memDir(), memLimitFile(s.v2))); err == nil {
			c.memLimit, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		}
	}
	return c
}

func memLimitFile(v2 bool) string {
	if v2 {
		return "memory.max"
	}
	return "memory.limit_in_bytes"
}

// add moves process pid (all its threads) into the cgroup.
func (c *cgroup) add(pid int) error {
	for _, d := range c.dirs() {
		if err := writeCgroupFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("agentd: cgroups: move %d into %s: %w", pid, d, err)
		}
	}
	return nil
}

// oomKills is how many processes the kernel's OOM killer killed in the
// cgroup (v1: memory.oom_control's oom_kill; v2: memory.events').
func (c *cgroup) oomKills() uint64 {
	if !c.set.iso.mem {
		return 0
	}
	file := "memory.oom_control"
	if c.set.v2 {
		file = "memory.events"
	}
	return readKeyed(filepath.Join(c.memDir(), file), "oom_kill")
}

// maxUsage is the highest memory use recorded for the cgroup, or 0.
func (c *cgroup) maxUsage() uint64 {
	file := "memory.max_usage_in_bytes"
	if c.set.v2 {
		file = "memory.peak"
	}
	b, err := os.ReadFile(filepath.Join(c.memDir(), file))
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v
}

// limitationMessage says why the OOM killer stopped the task, as Mesos
// words it.
func (c *cgroup) limitationMessage() string {
	return fmt.Sprintf("Memory limit exceeded: Requested: %dMB Maximum Used: %dMB", c.memLimit>>20, c.maxUsage()>>20)
}

// pids lists the processes in the cgroup.
func (c *cgroup) pids() []int {
	var out []int
	seen := map[int]bool{}
	for _, d := range c.dirs() {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 && !seen[pid] {
				seen[pid] = true
				out = append(out, pid)
			}
		}
	}
	return out
}

// killAll sends SIGKILL to every process left in the cgroup, those that
// left the task's process group included.
func (c *cgroup) killAll() {
	for _, pid := range c.pids() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// destroy kills what is left in the cgroup and removes it. Exited
// processes leave their cgroup at once, so this waits at most briefly.
func (c *cgroup) destroy() error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		c.killAll()
		// Reap what was ours (the agent is the tasks' subreaper).
		for _, pid := range c.pids() {
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		}
		err := c.remove()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// remove deletes the cgroup's directories.
func (c *cgroup) remove() error {
	var errs []error
	for _, d := range c.dirs() {
		if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("agentd: cgroups: remove %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// staleCgroupAge is how old an empty task cgroup must be before any agent
// removes it as an orphan: a cgroup is empty only for the instant between
// its creation and its process moving in, unless its task is gone.
const staleCgroupAge = time.Minute

// removeStale removes the empty task cgroups under the root older than
// staleCgroupAge: those of tasks that ended while no agent followed them
// (their agent was killed, then they were). It returns how many went.
func (s *cgroupSet) removeStale(now time.Time) int {
	var parents []string
	if s.v2 {
		parents = []string{filepath.Join(s.hierarchy, s.root)}
	} else {
		for _, c := range s.controllers() {
			parents = append(parents, filepath.Join(s.hierarchy, c, s.root))
		}
	}
	n := 0
	for _, p := range parents {
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			d := filepath.Join(p, e.Name())
			info, err := e.Info()
			if err != nil || now.Sub(info.ModTime()) < staleCgroupAge {
				continue
			}
			if b, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err != nil || len(strings.TrimSpace(string(b))) > 0 {
				continue
			}
			if syscall.Rmdir(d) == nil {
				n++
			}
		}
	}
	return n
}

// writeCgroupFile writes one value to a cgroup control file (which must
// exist: cgroupfs files are never created).
func writeCgroupFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readKeyed reads the value of key from a "key value" per line file.
func readKeyed(path, key string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// gateScript holds a task's process until the agent has moved it into its
// cgroup: the agent starts `/bin/sh -c gateScript keel-gate <argv...>`
// with the read end of a pipe as fd 3, writes a line once the pid is in
// the cgroup, and the shell execs the task's command in place (same pid,
// so kill and re-attach work unchanged). If the agent dies first, the
// pipe reads EOF and the task never runs unconfined.
const gateScript = `read _ <&3 || exit 125; exec 3<&-; exec "$@"`

// setupIsolation applies the isolation defaults and prepares the cgroups
// the config asks for, logging what is enforced.
func (a *Agent) setupIsolation() error {
	c := &a.cfg
	if c.CgroupsHierarchy == "" {
		c.CgroupsHierarchy = "/sys/fs/cgroup"
	}
	if c.CgroupsRoot == "" {
		c.CgroupsRoot = "keel"
	}
	auto := strings.TrimSpace(c.Isolation) == ""
	spec := c.Isolation
	if auto {
		spec = isolationCgroupsCPU + "," + isolationCgroupsMem
	}
	iso, err := parseIsolation(spec)
	if err != nil {
		return err
	}
	if !iso.cpu && !iso.mem {
		a.log.Info("isolation: process tasks run without resource limits", "isolation", iso.String())
		return nil
	}
	set, err := newCgroupSet(c.CgroupsHierarchy, c.CgroupsRoot, iso)
	if err != nil {
		if auto {
			a.log.Warn("isolation: cgroups unavailable; process tasks run without resource limits",
				"isolation", isolation{}.String(), "err", err)
			return nil
		}
		return err
	}
	a.cgroups = set
	cpu, mem := "none", "none"
	if iso.cpu {
		cpu = "cpu.shares = cpus*1024"
		if set.v2 {
			cpu = "cpu.weight from cpus*1024 shares"
		}
	}
	if iso.mem {
		mem = "hard limit memory.limit_in_bytes = mem"
		if set.v2 {
			mem = "hard limit memory.max = mem"
		}
	}
	a.log.Info("isolation: each process task gets its own cgroup", "isolation", iso.String(), "cgroups", set.describe(),
		"hierarchy", c.CgroupsHierarchy, "root", c.CgroupsRoot, "cpu", cpu, "mem", mem)
	return nil
}
