#!/usr/bin/env bash
# Runs the examples tour in order. Usage: scripts/demo.sh <examples build dir>
set -euo pipefail
dir=${1:?usage: demo.sh <examples build dir>}
for ex in $(cat "$(dirname "$0")/../examples/TOUR"); do
  echo
  echo "=== $ex"
  "$dir/$ex"
done
