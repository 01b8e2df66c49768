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
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: missing ${missing[*]} and no apt-get to install them; install them by hand" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "test-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
