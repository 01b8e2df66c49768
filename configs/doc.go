// Package configs loads daemon configuration files. A file is YAML (JSON is
// YAML too) whose keys are the daemon's flag names, so everything a flag
// can say a file can say, and the documentation of one is the
// documentation of the other:
//
//	# /etc/keel/master.yaml
//	port: 5050
//	work_dir: /var/lib/keel
//	zk: zk://n1:2181,n2:2181,n3:2181/keel
//
// Flags given on the command line win over the file. An unknown key or a
// value its flag rejects is an error naming the key, so a typo never goes
// unnoticed. Example files and systemd units live in this directory.
package configs
