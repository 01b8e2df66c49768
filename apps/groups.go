package apps

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/keelhq/keel/api/marathon"
)

// Groups, as Marathon has them: an app's ID is a path and every element
// before the last names a group ("/prod/db/pg" is app pg of group
// /prod/db, itself in /prod, in the root "/"). The tree is built from the
// app IDs; a group record is kept only for what the IDs cannot say: its
// dependencies, and that an empty group exists. Everything in this file is
// pure.

// groupRecord is what the Store keeps of a group.
type groupRecord struct {
	ID           string   `json:"id"`
	Dependencies []string `json:"dependencies,omitempty"`
	Version      string   `json:"version,omitempty"`
}

// resolveID makes id absolute relative to the group base, as Marathon
// resolves relative app IDs and dependencies ("db" and "../x/db" under
// /prod are /prod/db and /x/db).
func resolveID(base, id string) string {
	id = strings.TrimSpace(id)
	if id == "" {
		return ""
	}
	if !strings.HasPrefix(id, "/") {
		id = base + "/" + id
	}
	return path.Clean(id)
}

// parentOf is the group an app or group is in ("/" for a top-level one).
func parentOf(id string) string { return path.Dir(id) }

// under reports whether id is group g or anything in it.
func under(id, g string) bool {
	return g == "/" || id == g || strings.HasPrefix(id, g+"/")
}

// validGroupID checks a group ID's path elements like app IDs'.
func validGroupID(id string) bool {
	if id == "/" {
		return true
	}
	if !strings.HasPrefix(id, "/") {
		return false
	}
	for _, seg := range strings.Split(id[1:], "/") {
		if !segment.MatchString(seg) {
			return false
		}
	}
	return true
}

// flatGroup is a group tree from a request, flattened: every app with its
// ID absolute and its definition validated, and every group's record.
type flatGroup struct {
	Apps   []marathon.App
	Groups []groupRecord
}

// flatten resolves and validates a group tree rooted at id (the group's own
// ID in the body, when given, is resolved against parent). Every invalid
// field is reported under its place in the tree ("/apps(0)/cpus",
// "/groups(1)/apps(0)/id"); nothing is returned unless all are valid.
func flatten(g marathon.Group, parent string) (flatGroup, error) {
	v := &validationError{}
	var out flatGroup
	seen := map[string]bool{}
	var walk func(g marathon.Group, parent, prefix string)
	walk = func(g marathon.Group, parent, prefix string) {
		id := resolveID(parent, g.ID)
		if id == "" {
			id = parent
		}
		if !validGroupID(id) {
			v.add(prefix+"/id", fmt.Sprintf("'%s' is not a valid group ID", id))
			return
		}
		if prefix != "" && (id == parent || parentOf(id) != parent) {
			v.add(prefix+"/id", fmt.Sprintf("group '%s' is not a child of group '%s'", id, parent))
			return
		}
		rec := groupRecord{ID: id}
		for i, d := range g.Dependencies {
			r := resolveID(parentOf(id), d)
			if r == "" || !validGroupID(r) {
				v.add(fmt.Sprintf("%s/dependencies(%d)", prefix, i), fmt.Sprintf("'%s' is not a valid app or group ID", d))
				continue
			}
			rec.Dependencies = append(rec.Dependencies, r)
		}
		out.Groups = append(out.Groups, rec)
		for i, app := range g.Apps {
			p := fmt.Sprintf("%s/apps(%d)", prefix, i)
			if strings.TrimSpace(app.ID) == "" {
				v.add(p+"/id", "must not be empty")
				continue
			}
			app.ID = resolveID(id, app.ID)
			if parentOf(app.ID) != id {
				v.add(p+"/id", fmt.Sprintf("app '%s' is not a child of group '%s'", app.ID, id))
				continue
			}
			if err := validate(&app); err != nil {
				if ve, ok := err.(*validationError); ok {
					for _, d := range ve.details {
						for _, e := range d.Errors {
							v.add(p+strings.TrimSuffix(d.Path, "/"), e)
						}
					}
				}
				continue
			}
			if seen[app.ID] {
				v.add(p+"/id", fmt.Sprintf("app '%s' is given more than once", app.ID))
				continue
			}
			seen[app.ID] = true
			out.Apps = append(out.Apps, app)
		}
		for i, sub := range g.Groups {
			walk(sub, id, fmt.Sprintf("%s/groups(%d)", prefix, i))
		}
	}
	walk(g, parent, "")
	if len(v.details) > 0 {
		return flatGroup{}, v
	}
	return out, nil
}

// buildTree is the group tree of the apps and group records, rooted at
// "/". Apps and groups are sorted by ID; a group's version is the latest
// of its own and of everything in it.
func buildTree(apps []marathon.App, groups []groupRecord) marathon.Group {
	nodes := map[string]*marathon.Group{}
	var ensure func(id string) *marathon.Group
	ensure = func(id string) *marathon.Group {
		if n, ok := nodes[id]; ok {
			return n
		}
		n := &marathon.Group{ID: id, Apps: []marathon.App{}, Groups: []marathon.Group{}, Dependencies: []string{}}
		nodes[id] = n
		if id != "/" {
			ensure(parentOf(id))
		}
		return n
	}
	ensure("/")
	for _, r := range groups {
		n := ensure(r.ID)
		n.Dependencies = append(n.Dependencies, r.Dependencies...)
		n.Version = r.Version
	}
	for _, a := range apps {
		n := ensure(parentOf(a.ID))
		n.Apps = append(n.Apps, a)
	}
	var assemble func(id string) marathon.Group
	assemble = func(id string) marathon.Group {
		n := nodes[id]
		g := *n
		sort.Slice(g.Apps, func(i, j int) bool { return g.Apps[i].ID < g.Apps[j].ID })
		for _, a := range g.Apps {
			g.Version = max(g.Version, a.Version)
		}
		var kids []string
		for cid := range nodes {
			if cid != "/" && parentOf(cid) == id {
				kids = append(kids, cid)
			}
		}
		sort.Strings(kids)
		for _, cid := range kids {
			sub := assemble(cid)
			g.Version = max(g.Version, sub.Version)
			g.Groups = append(g.Groups, sub)
		}
		return g
	}
	return assemble("/")
}

// findGroup returns the group id in the tree.
func findGroup(root marathon.Group, id string) (marathon.Group, bool) {
	if root.ID == id {
		return root, true
	}
	for _, g := range root.Groups {
		if under(id, g.ID) {
			return findGroup(g, id)
		}
	}
	return marathon.Group{}, false
}

// dependencyIDs lists what app depends on: its own dependencies and those
// of every group it is in (all absolute).
func dependencyIDs(app marathon.App, groups map[string]groupRecord) []string {
	deps := append([]string(nil), app.Dependencies...)
	for g := parentOf(app.ID); ; g = parentOf(g) {
		deps = append(deps, groups[g].Dependencies...)
		if g == "/" {
			break
		}
	}
	return deps
}

// dependencyCycle returns a cycle of apps that depend on each other
// ("/a -> /b -> /a"), or "" when there is none: such apps would wait for
// each other forever.
func dependencyCycle(apps map[string]marathon.App, groups map[string]groupRecord) string {
	ids := make([]string, 0, len(apps))
	for id := range apps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	edges := map[string][]string{}
	for _, id := range ids {
		for _, dep := range dependencyIDs(apps[id], groups) {
			if under(id, dep) {
				continue // a group's dependency on itself is not a wait
			}
			for _, other := range ids {
				if under(other, dep) {
					edges[id] = append(edges[id], other)
				}
			}
		}
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(id string) string
	visit = func(id string) string {
		state[id] = onPath
		path = append(path, id)
		for _, next := range edges[id] {
			switch state[next] {
			case onPath:
				for i, p := range path {
					if p == next {
						return strings.Join(append(append([]string(nil), path[i:]...), next), " -> ")
					}
				}
			case unseen:
				if c := visit(next); c != "" {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[id] = done
		return ""
	}
	for _, id := range ids {
		if state[id] == unseen {
			if c := visit(id); c != "" {
				return c
			}
		}
	}
	return ""
}
