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
# the 4 GB budget of a full Sentinel-2 tile pair, in the library and through the CLI (methods and model)
echo "== change --full, --cli" >&2
.venv/bin/python bench/change.py --full | tee bench/results/change_full.txt
.venv/bin/python bench/change.py --cli | tee bench/results/change_cli.txt
.venv/bin/python bench/change.py --cli --model | tee bench/results/change_cli_model.txt
