#!/usr/bin/env bash
# Installs what Keel's tests need when it is missing, from Debian's
# packages. Idempotent: does nothing when everything is there.
set -euo pipefail

# command -> Debian package
declare -A need=(
  [dig]=dnsutils
  [curl]=curl
  [python3]=python3
  [pgrep]=procps
  [chromium]=chromium
  [wrk]=wrk
)

missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# Real ZooKeeper for coord's tests (internal/zktest runs its jars with
# java). Debian's zookeeper package depends on a JRE; add a headless one
# only when there is no java at all, so an existing JDK is kept.
if [ ! -e /usr/share/java/zookeeper.jar ]; then
  missing+=(zookeeper)
  command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: missing ${missing[*]} and no apt-get to install them; install them by hand" >&2
    exit 1
  fi
  echo "test-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The agent's Docker tests talk to the machine's Docker Engine: start it
# when it is installed but stopped.
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "test-deps: no Docker Engine (dockerd) on this machine; the agent's Docker tests need one" >&2
    exit 1
  fi
  echo "test-deps: starting the Docker Engine"
  if command -v systemctl >/dev/null 2>&1 && $sudo systemctl start docker 2>/dev/null; then
    :
  else
    $sudo sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "test-deps: the Docker Engine did not start (see /var/log/dockerd.log)" >&2; exit 1; }
fi
