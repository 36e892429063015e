#!/usr/bin/env bash
# Runs the V2X decoder fuzz targets (fuzz/fuzz_targets) with libFuzzer, one after the other.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 600 s, every target)
#
# Works on the stable toolchain: the targets are built with libFuzzer's coverage
# instrumentation (sancov) through stable -C flags instead of `cargo fuzz`, which wants nightly
# for its sanitizers. Without AddressSanitizer a finding is a panic or an abort (safe Rust has
# no out-of-bounds write to catch); libfuzzer-sys turns a panic into a crash with the input
# saved under fuzz/artifacts/<target>/. Corpora grow in fuzz/corpus/<target>/ (not committed),
# seeded from crates/v2x/testdata. A summary line per target goes to stdout and the full log to
# fuzz/logs/<target>.log. Exit status: non-zero when any target found a crash.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-600}"
shift || true
cd "$root/fuzz"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=()
    for f in fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

# libFuzzer's instrumentation, as cargo-fuzz sets it, minus the sanitizer.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
target_dir="${FUZZ_TARGET_DIR:-$root/fuzz/target}"
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
# An explicit --target keeps RUSTFLAGS off the build scripts (they must link without libFuzzer).
host="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --target "$host" --target-dir "$target_dir" "${bins[@]}"

seed() {
    local t="$1" dir="$2"
    local td="$root/crates/v2x/testdata"
    case "$t" in
        certificate_oer) cp "$td"/*.oer "$dir"/ ;;
        secured_oer) cp "$td"/*.oer "$dir"/ ;;
        uper_its) cp "$td"/*.uper "$dir"/ ;;
        geonetworking) cp "$td"/fuzz-gn-*.bin "$dir"/
            python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(open(sys.argv[1]).read().split()[0]))' \
                "$td/c-its-parser-cam-radiotap.hex" > "$dir/cam-radiotap.bin" ;;
        veremi_json)
            printf '%s\n' '{"type":3,"rcvTime":10.2,"sendTime":10.1,"sender":7,"senderPseudo":10007,"messageID":1,"pos":[3.1,4.2,0],"pos_noise":[1,1,0],"spd":[1.0,0.5,0],"spd_noise":[0.1,0.1,0],"acl":[0,0,0],"hed":[1,0,0]}' > "$dir/beacon.json"
            printf '%s\n' '{"type":2,"rcvTime":10.0,"pos":[0,0,0],"pos_noise":[1,1,0],"spd":[0,0,0],"spd_noise":[0,0,0],"acl":[0,0,0],"hed":[1,0,0]}' > "$dir/gps.json" ;;
    esac
}

status=0
mkdir -p logs
for t in "${targets[@]}"; do
    corpus="corpus/$t"
    artifacts="artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    [ -n "$(ls -A "$corpus")" ] || seed "$t" "$corpus"
    log="logs/$t.log"
    began=$SECONDS
    set +e
    "$target_dir/$host/release/$t" "$corpus" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=4096 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" > "$log" 2>&1
    rc=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
    echo "$t: exit $rc after $((SECONDS - began)) s, $runs executions, coverage $cov edges, corpus $(ls "$corpus" | wc -l) inputs"
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "  crash: see fuzz/$log and fuzz/$artifacts/"
    fi
done
exit "$status"
