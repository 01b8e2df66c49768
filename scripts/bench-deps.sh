#!/usr/bin/env bash
# Installs the benchmark peers and load generators of ../shared/BENCH.md
# from Debian's packages when missing: HAProxy and wrk, NSD and dnsperf
# (and taskset).
set -euo pipefail
declare -A need=([haproxy]=haproxy [wrk]=wrk [nsd]=nsd [dnsperf]=dnsperf [taskset]=util-linux)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "bench-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
