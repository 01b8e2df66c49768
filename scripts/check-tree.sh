#!/usr/bin/env bash
# Fails when a tracked file is larger than 1 MiB, or a Go file is not
# gofmt'ed. Large files: built binaries and
# generated data belong out of the repository (a submission has a size
# limit, and every commit of a changed binary counts in full).
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((1024 * 1024))
bad=0
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue
  size=$(stat -c %s "$f")
  if [ "$size" -gt "$limit" ]; then
    echo "check-tree: $f is $size bytes (limit $limit): keep built or generated files out of git" >&2
    bad=1
  fi
done < <(git ls-files -z)
# Every Go file is gofmt'ed.
unformatted=$(git ls-files -z '*.go' | xargs -0 gofmt -l)
if [ -n "$unformatted" ]; then
  echo "check-tree: gofmt would change: $unformatted (run gofmt -w on them)" >&2
  bad=1
fi
exit $bad
