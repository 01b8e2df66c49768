//go:build !linux

package proxy

// loopSockets reports false: without Linux there is no TCP loop.
func loopSockets(p *Proxy, f func(fd int)) bool { return false }
