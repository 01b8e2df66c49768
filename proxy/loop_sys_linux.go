//go:build linux

package proxy

import (
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The loop's hot-path system calls (epoll_wait, read, write, accept4,
// splice) are raw calls: the Go scheduler does not see them, so the loop's goroutine is
// simply running while it waits in the kernel. Through the ordinary
// wrappers each call enters the syscall state, and the runtime's monitor
// takes the P away from any call it sees last a tick (a wait, or a write
// that runs the receiver's TCP stack on loopback), hands it to another
// thread and back again: a thread switch per request.
//
// The price is a P held by a thread that is blocked in epoll_wait, so a
// running loop has one P of its own (loopProcs): other goroutines keep the
// Ps they had. A signal ends the wait with EINTR (the scheduler's
// preemption signal included), and the loop then yields (runtime.Gosched),
// so a stop-the-world still reaches it at once. Every descriptor the loop
// owns is non-blocking, so no other raw call blocks. An idle loop waits
// through the ordinary call instead (loop.wait), leaving its P to the
// runtime.

// rawEpollWait is epoll_pwait(2) with no signal mask, as a raw call.
func rawEpollWait(epfd int, events []unix.EpollEvent, msec int) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), uintptr(msec), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// rawRead is read(2) of b on fd as a raw call; b is not empty.
func rawRead(fd int, b []byte) (int, error) { return rawIO(unix.SYS_READ, fd, b) }

// rawWrite is write(2) of b on fd as a raw call; b is not empty.
func rawWrite(fd int, b []byte) (int, error) { return rawIO(unix.SYS_WRITE, fd, b) }

// rawIO is read(2) or write(2) (trap) of b on fd as a raw call, retried
// when a signal interrupts it.
func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	for {
		n, _, errno := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, errno
	}
}

// loopProcs gives each running loop a P of its own: GOMAXPROCS is what it
// was before the first loop started plus the number of loops running.
var loopProcs struct {
	mu      sync.Mutex
	base    int
	running int
}

// addLoopProc raises GOMAXPROCS by one for a loop that starts (delta 1)
// or lowers it for one that stopped (delta -1).
func addLoopProc(delta int) {
	loopProcs.mu.Lock()
	defer loopProcs.mu.Unlock()
	if loopProcs.running == 0 {
		loopProcs.base = runtime.GOMAXPROCS(0)
	}
	loopProcs.running += delta
	runtime.GOMAXPROCS(loopProcs.base + loopProcs.running)
}

// rawAccept is accept4(2) of a non-blocking, close-on-exec connection on
// the listener lfd, as a raw call, with the peer's address as 4 or 16
// bytes (nil for another family). unix.Accept4 also asks the listener for
// its protocol on every IPv4 connection: a system call per connection the
// loop has no use for.
func rawAccept(lfd int) (fd int, ip []byte, errno unix.Errno) {
	var sa unix.RawSockaddrAny
	size := uint32(unix.SizeofSockaddrAny)
	n, _, errno := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&size)),
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if errno != 0 {
		return -1, nil, errno
	}
	switch sa.Addr.Family {
	case unix.AF_INET:
		in := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		ip = append([]byte(nil), in.Addr[:]...)
	case unix.AF_INET6:
		in := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa))
		ip = append([]byte(nil), in.Addr[:]...)
	}
	return int(n), ip, 0
}

// rawSplice is splice(2) of up to n bytes from in to out (one of them a
// pipe), non-blocking, as a raw call.
func rawSplice(in, out, n int) (int, unix.Errno) {
	for {
		m, _, errno := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n),
			unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		if errno == unix.EINTR {
			continue
		}
		return int(m), errno
	}
}
