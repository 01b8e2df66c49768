package agentd

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/keelhq/keel/api/mesos"
)

// DetectResources returns what this machine can offer, Mesos style: all
// CPUs, memory less 1 GiB for the system (at least 256 MiB), the free disk
// of workDir's filesystem less 1 GiB (at least 1 GiB), and ports
// [31000-32000].
func DetectResources(workDir string) mesos.Resources {
	mem := memTotalMiB() - 1024
	if mem < 256 {
		mem = 256
	}
	disk := 1024.0
	var st unix.Statfs_t
	if err := unix.Statfs(workDir, &st); err == nil {
		if free := float64(st.Bavail)*float64(st.Bsize)/(1<<20) - 1024; free > disk {
			disk = free
		}
	}
	return mesos.Resources{
		mesos.ScalarResource("cpus", float64(runtime.NumCPU())),
		mesos.ScalarResource("mem", float64(int(mem))),
		mesos.ScalarResource("disk", float64(int(disk))),
		mesos.RangesResource("ports", mesos.Range{Begin: 31000, End: 32000}),
	}.Normalize()
}

func memTotalMiB() float64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseFloat(fields[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// becomeSubreaper makes this process the reaper of its tasks' orphans
// (Linux PR_SET_CHILD_SUBREAPER), so a task's whole process tree stays
// visible to the agent whatever PID 1 does.
func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}
