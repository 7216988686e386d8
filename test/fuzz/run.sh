#!/usr/bin/env bash
# Longer fuzzing campaigns than CI's 5,000 requests (issue 10 §6):
#   npm run fuzz -- --runs 50000 --seed 42      (no --seed: a random one, printed)
# Runs test/fuzz/api-fuzz.test.ts with FUZZ_RUNS/FUZZ_SEED; a failure reproduces with its seed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runs=20000 seed=$(( (RANDOM << 15) | RANDOM ))
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    *) echo "usage: npm run fuzz -- [--runs N] [--seed S]" >&2; exit 2 ;;
  esac
done
echo "fuzz: $runs requests, seed $seed"
FUZZ_RUNS="$runs" FUZZ_SEED="$seed" exec npx vitest run test/fuzz/api-fuzz.test.ts
