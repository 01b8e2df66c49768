package coord

import "errors"

// ErrNotLeader is returned by a ZKStore write (and read) once the term it
// was created for is over, or when ZooKeeper refuses a write because the
// writer's election node is gone: a deposed leader must not write.
var ErrNotLeader = errors.New("coord: not the leader")

// ErrNoLeader is returned by a Detector's LeaderURL when its context ends
// before any leader is known.
var ErrNoLeader = errors.New("coord: no leader known")
