package apps

import (
	"fmt"
	"strings"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
)

// Docker apps: Marathon's container (type DOCKER, docker.image, ...) in
// the task's mesos.ContainerInfo. The networking mode comes from the
// app's networks ("host" or "container/bridge", Marathon 1.5+) or else
// from container.docker.network (HOST or BRIDGE, the older form); the
// default is host. With bridge networking an app's ports are its port
// mappings (container.portMappings, or container.docker.portMappings in
// the older form) and its portDefinitions are not used; every mapping
// gets a host port from the offer (its hostPort when not 0) and a service
// port just like a port definition. Keel's agent runs HOST, BRIDGE and
// NONE networks only, so container/user networks are refused.

// Docker networking modes, as mesos.DockerInfo names them.
const (
	netHost   = "HOST"
	netBridge = "BRIDGE"
)

// networkMode is the app's docker networking mode.
func networkMode(app *marathon.App) string {
	for _, n := range app.Networks {
		switch strings.ToLower(n.Mode) {
		case "container/bridge":
			return netBridge
		case "host":
			return netHost
		default:
			return strings.ToUpper(n.Mode)
		}
	}
	if c := app.Container; c != nil && c.Docker != nil && c.Docker.Network != "" {
		return strings.ToUpper(c.Docker.Network)
	}
	return netHost
}

// isDocker reports whether the app runs in a Docker container.
func isDocker(app *marathon.App) bool {
	return app.Container != nil && app.Container.Docker != nil &&
		(app.Container.Type == "" || strings.EqualFold(app.Container.Type, "DOCKER"))
}

// portMappings is the app's port mappings in use (nil unless bridged), as
// a slice of the definition itself so service ports can be set in place.
func portMappings(app *marathon.App) []marathon.PortMapping {
	if app.Container == nil || networkMode(app) != netBridge {
		return nil
	}
	if len(app.Container.PortMappings) > 0 {
		return app.Container.PortMappings
	}
	if app.Container.Docker != nil {
		return app.Container.Docker.PortMappings
	}
	return nil
}

// appPort is one port of an app, from a port definition or a mapping.
type appPort struct {
	Service   int    // service port (0 until assigned)
	Name      string // may be empty
	Protocol  string // tcp, udp or "udp,tcp"
	Container int    // container port of a mapping; 0 for a port definition
	Host      int    // the host port it needs; 0 = any free one
	Mapped    bool   // from a port mapping
}

// appPorts lists the app's ports in order: its port mappings when bridged,
// otherwise its port definitions.
func appPorts(app *marathon.App) []appPort {
	if pms := portMappings(app); pms != nil {
		out := make([]appPort, 0, len(pms))
		for _, pm := range pms {
			p := appPort{Service: pm.ServicePort, Name: pm.Name, Protocol: pm.Protocol, Container: pm.ContainerPort, Mapped: true}
			if pm.HostPort != nil {
				p.Host = *pm.HostPort
			}
			out = append(out, p)
		}
		return out
	}
	out := make([]appPort, 0, len(app.PortDefinitions))
	for _, pd := range app.PortDefinitions {
		p := appPort{Service: pd.Port, Name: pd.Name, Protocol: pd.Protocol}
		if app.RequirePorts {
			p.Host = pd.Port
		}
		out = append(out, p)
	}
	return out
}

// servicePortRefs points at the service port of each of the app's ports,
// for assigning them.
func servicePortRefs(app *marathon.App) []*int {
	var out []*int
	if pms := portMappings(app); pms != nil {
		for i := range pms {
			out = append(out, &pms[i].ServicePort)
		}
		return out
	}
	for i := range app.PortDefinitions {
		out = append(out, &app.PortDefinitions[i].Port)
	}
	return out
}

// keepServicePorts gives the ports of next left at 0 the service ports
// cur has at the same place: they survive an update.
func keepServicePorts(cur, next *marathon.App) {
	old := servicePortRefs(cur)
	for i, p := range servicePortRefs(next) {
		if *p == 0 && i < len(old) {
			*p = *old[i]
		}
	}
}

// validateContainer checks the container of an app.
func validateContainer(app *marathon.App, v *validationError) {
	c := app.Container
	if c == nil {
		return
	}
	switch strings.ToUpper(c.Type) {
	case "", "DOCKER":
		if c.Docker == nil || strings.TrimSpace(c.Docker.Image) == "" {
			v.add("/container/docker/image", "a DOCKER container needs an image")
		}
	case "MESOS":
		if c.Docker != nil {
			v.add("/container/type", "Keel runs images with the DOCKER containerizer only: use type DOCKER")
		}
	default:
		v.add("/container/type", "must be DOCKER or MESOS")
	}
	switch mode := networkMode(app); mode {
	case netHost, netBridge, "NONE":
	default:
		path := "/container/docker/network"
		if len(app.Networks) > 0 {
			path = "/networks(0)/mode"
		}
		v.add(path, fmt.Sprintf("network mode %q is not supported: use host or container/bridge", mode))
	}
	pmPath := "/container/portMappings"
	if len(c.PortMappings) == 0 {
		pmPath = "/container/docker/portMappings"
	}
	seen := map[int]bool{}
	for i, pm := range portMappings(app) {
		path := fmt.Sprintf("%s(%d)", pmPath, i)
		if pm.ContainerPort < 0 || pm.ContainerPort > 65535 {
			v.add(path+"/containerPort", fmt.Sprintf("got %d, expected 0 to 65535", pm.ContainerPort))
		}
		if pm.HostPort != nil && (*pm.HostPort < 0 || *pm.HostPort > 65535) {
			v.add(path+"/hostPort", fmt.Sprintf("got %d, expected 0 to 65535", *pm.HostPort))
		}
		if pm.ServicePort < 0 || pm.ServicePort > 65535 {
			v.add(path+"/servicePort", fmt.Sprintf("got %d, expected 0 to 65535", pm.ServicePort))
		} else if pm.ServicePort != 0 {
			if seen[pm.ServicePort] {
				v.add(path+"/servicePort", fmt.Sprintf("port %d is used more than once", pm.ServicePort))
			}
			seen[pm.ServicePort] = true
		}
		switch pm.Protocol {
		case "", "tcp", "udp", "udp,tcp", "tcp,udp":
		default:
			v.add(path+"/protocol", "must be one of tcp, udp, udp,tcp")
		}
	}
}

// containerInfo is the task's container, nil for a command app.
func containerInfo(app *marathon.App, hostPorts []int) *mesos.ContainerInfo {
	if !isDocker(app) {
		return nil
	}
	d := app.Container.Docker
	di := &mesos.DockerInfo{Image: d.Image, Network: networkMode(app), Privileged: d.Privileged, ForcePullImage: d.ForcePullImage}
	for _, p := range d.Parameters {
		di.Parameters = append(di.Parameters, mesos.Parameter{Key: p.Key, Value: p.Value})
	}
	if di.Network == netBridge {
		for i, p := range appPorts(app) {
			if i >= len(hostPorts) {
				break
			}
			cport := p.Container
			if cport == 0 {
				cport = hostPorts[i] // Marathon: container port 0 means the host port
			}
			protos := strings.Split(p.Protocol, ",")
			for _, proto := range protos {
				if proto == "" {
					proto = "tcp"
				}
				di.PortMappings = append(di.PortMappings, mesos.PortMapping{HostPort: uint32(hostPorts[i]), ContainerPort: uint32(cport), Protocol: proto})
			}
		}
	}
	ci := &mesos.ContainerInfo{Type: "DOCKER", Docker: di}
	for _, v := range app.Container.Volumes {
		mode := strings.ToUpper(v.Mode)
		if mode == "" {
			mode = "RW"
		}
		ci.Volumes = append(ci.Volumes, mesos.Volume{ContainerPath: v.ContainerPath, HostPath: v.HostPath, Mode: mode})
	}
	return ci
}
