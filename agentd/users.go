package agentd

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// Mesos' --switch_user: a task whose CommandInfo names a user runs as that
// user (uid, primary gid and supplementary groups), in a sandbox it owns.
// An unknown user fails the task before anything runs.

// taskUser is who a task runs as: nil for the agent's own user.
func (a *Agent) taskUser(t *task) (*syscall.Credential, error) {
	if a.cfg.NoSwitchUser || t.info.Command == nil || t.info.Command.User == "" {
		return nil, nil
	}
	return lookupCredential(t.info.Command.User)
}

// lookupCredential resolves name to a credential, nil when it is the
// agent's own user (no switch needed).
func lookupCredential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("agentd: cannot run the task as user %q: no such user on this agent (%v)", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("agentd: user %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("agentd: user %q: gid %q: %w", name, u.Gid, err)
	}
	if int(uid) == os.Getuid() && int(gid) == os.Getgid() {
		return nil, nil
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("agentd: user %q: groups: %w", name, err)
	}
	for _, g := range gids {
		if v, err := strconv.ParseUint(g, 10, 32); err == nil && v != gid {
			cred.Groups = append(cred.Groups, uint32(v))
		}
	}
	if cred.Groups == nil {
		cred.Groups = []uint32{} // drop the agent's own supplementary groups
	}
	return cred, nil
}

// chownSandbox gives the sandbox and what is in it to the task's user.
func chownSandbox(dir string, cred *syscall.Credential) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	})
}
