#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, one after the other.
#
#   fuzz/run.sh            # 60 s per target
#   fuzz/run.sh 300        # 300 s per target
#   FUZZ_SECONDS=300 fuzz/run.sh
#   fuzz/run.sh 60 frame   # only the named targets
#
# The targets (`cargo fuzz list`): encodings, frame, handshake, marker,
# round_trip; see README.md.
#
# New inputs go to fuzz/corpus/<target>/ (ignored by git); the committed
# seeds in fuzz/seeds/<target>/ are read but never written. A crash leaves
# its input in fuzz/artifacts/<target>/ and stops this script with the
# target's exit status. Extra libFuzzer flags: FUZZ_FLAGS="-jobs=2".
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-${FUZZ_SECONDS:-60}}"
shift || true
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build
for target in "${targets[@]}"; do
    echo "== $target: ${seconds} s"
    mkdir -p "corpus/$target"
    # shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
    cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 ${FUZZ_FLAGS:-}
done
