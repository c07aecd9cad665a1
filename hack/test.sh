#!/usr/bin/env bash
# `npm test`: sets everything up, then runs the mocha suites (unit and e2e on a
# local control plane) and the pytest suites (worker, kernels), and prints one
# summary line counting every test: "N passed, N failed, N skipped".
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash hack/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
logs=$(mktemp -d)

npx mocha "$@" 2>&1 | tee "$logs/mocha.log"
mocha_rc=${PIPESTATUS[0]}
.venv/bin/pytest -q -p no:cacheprovider 2>&1 | tee "$logs/pytest.log"
pytest_rc=${PIPESTATUS[0]}

count() { grep -Eo "[0-9]+ $2" "$1" | tail -n 1 | grep -Eo '^[0-9]+' || echo 0; }
passed=$(( $(count "$logs/mocha.log" passing) + $(count "$logs/pytest.log" passed) ))
failed=$(( $(count "$logs/mocha.log" failing) + $(count "$logs/pytest.log" failed) + $(count "$logs/pytest.log" error) ))
skipped=$(( $(count "$logs/mocha.log" pending) + $(count "$logs/pytest.log" skipped) ))
# A runner that crashed before reporting counts as a failure.
if [[ $mocha_rc -ne 0 && $(count "$logs/mocha.log" failing) -eq 0 ]]; then failed=$((failed + 1)); fi
if [[ $pytest_rc -ne 0 && $pytest_rc -ne 5 && $(count "$logs/pytest.log" failed) -eq 0 && $(count "$logs/pytest.log" error) -eq 0 ]]; then failed=$((failed + 1)); fi
echo
echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
