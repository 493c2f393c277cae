#!/usr/bin/env bash
# Stryker's test command (stryker.config.mjs; `make mutate`), run in Stryker's sandbox copy:
# runs only the test files of the module that holds the active mutant, so a mutant of
# lib/secrets.ts does not wait for the git-spawning paths tests. Arguments: one
# `module=test,test...` per mutated module. Without an active mutant (the initial run), or when
# the mutant is found in no module (Stryker changed its instrumentation), every listed test file runs.
set -euo pipefail
mutant=${__STRYKER_ACTIVE_MUTANT__:-}
all=()
mine=()
for pair in "$@"; do
  module=${pair%%=*}
  IFS=, read -ra tests <<<"${pair#*=}"
  all+=("${tests[@]/#/./}")
  if [ -n "$mutant" ] && grep -qE "stryMutAct_[0-9a-f]*\(\"${mutant}\"\)" "$module"; then mine+=("${tests[@]/#/./}"); fi
done
if [ ${#mine[@]} -eq 0 ]; then mine=("${all[@]}"); fi
exec node_modules/.bin/bun test "${mine[@]}"
