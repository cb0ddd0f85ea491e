#!/usr/bin/env bash
# Run every benchmark and keep its output in bench/results/<name>.txt
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
for b in bench/*.py; do
  name=$(basename "$b" .py)
  [[ $name == _* || $name == *_eval ]] && continue
  echo "== $name" >&2
  .venv/bin/python "$b" | tee "bench/results/$name.txt"
done
