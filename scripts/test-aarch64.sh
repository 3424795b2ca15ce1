#!/usr/bin/env bash
# The aarch64 build's test subset, run under qemu-aarch64-static (user-mode emulation) on an
# x86_64 Debian 12 machine. What it runs and why (docs/raspberry-pi.md, "Verified under
# emulation", has the list of what is left out):
#   1. every aarch64 unit test (front end, resampler, windowing, smoothing, decision, the rest
#      of the pipeline, sinks, config, manifests, ...)
#   2. the aarch64 integration tests: every front-end golden case, the models with the real
#      CED-tiny and the YAMNet backbone (in process and through `hark classify`, `hark features`,
#      `hark model info`), and one `hark run` daemon publishing on a Unix socket to subscribers
#   3. on this machine's build: `hark classify` of every real recording by the aarch64 binary
#      (CED-tiny and YAMNet) against the x86_64 one: the same top label in every window but
#      near-ties, scores close (tests/it/aarch64.rs prints the differences; why not 1e-3: its doc)
# The emulated CPU is a Cortex-A72 (Raspberry Pi 4; QEMU_CPU=cortex-a76 for a Pi 5), shown to
# ONNX Runtime as such in /proc/cpuinfo (see `sysroot` below).
# Usage: scripts/test-aarch64.sh [--no-build]
#   --no-build: the binaries of scripts/build-aarch64.sh --tests are already there
# Needs: qemu-user-static, libc6:arm64 libstdc++6:arm64 (multiarch; installed here when missing),
# ../shared/data (without it the tests that need it say SKIPPED).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=aarch64-unknown-linux-gnu
OUT=$ROOT/target/$TARGET/release

say() { printf '\033[1mhark test-aarch64:\033[0m %s\n' "$*" >&2; }

build=1
case "${1:-}" in
    --no-build) build=0 ;;
    "") ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) say "unknown argument $1 (see --help)"; exit 1 ;;
esac

started=$(date +%s)
[ $build = 1 ] && bash scripts/build-aarch64.sh --tests

# --- what the emulated binaries run on ---------------------------------------------------------
# The arm64 libraries come from Debian 12's own arm64 packages (multiarch: /lib/aarch64-linux-gnu,
# as on a Pi), not from the cross toolchain's copies, so the C library is the one a Pi has.
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in qemu-user-static libc6:arm64 libstdc++6:arm64 libasound2:arm64 libpulse0:arm64; do
    installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing apt packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# qemu-user 7.2 passes the host's /proc/cpuinfo (x86) through, and ONNX Runtime's CPU detection
# (pytorch/cpuinfo) finds no ARM core in it and crashes. qemu looks every absolute path up under
# its -L prefix first (QEMU_LD_PREFIX), so a prefix holding only proc/cpuinfo gives the emulated
# process an ARM /proc/cpuinfo and everything else from the host.
QEMU_CPU=${QEMU_CPU:-cortex-a72}
case $QEMU_CPU in
    cortex-a72) part=0xd08 variant=0x0 revision=3 features="fp asimd evtstrm crc32 cpuid" ;;
    cortex-a76) part=0xd0b variant=0x4 revision=1 features="fp asimd evtstrm crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
    *) say "QEMU_CPU must be cortex-a72 (Pi 4) or cortex-a76 (Pi 5)"; exit 1 ;;
esac
sysroot=$ROOT/target/aarch64-qemu-prefix
mkdir -p "$sysroot/proc"
cpus=$(getconf _NPROCESSORS_ONLN)
for ((i = 0; i < cpus; i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
        "$i" "$features" "$variant" "$part" "$revision"
done > "$sysroot/proc/cpuinfo"
export QEMU_LD_PREFIX=$sysroot QEMU_CPU
ORT_AARCH64=$ROOT/third_party/onnxruntime-aarch64/libonnxruntime.so
[ -e "$ORT_AARCH64" ] || { say "$ORT_AARCH64 is missing: run scripts/build-aarch64.sh"; exit 1; }

list=$OUT/test-binaries.txt
[ -s "$list" ] || { say "$list is missing: run scripts/build-aarch64.sh --tests"; exit 1; }
lib_tests=$(grep '^lib ' "$list" | cut -d' ' -f2)
it_tests=$(grep '^it ' "$list" | cut -d' ' -f2)

failed=0
step() { # name command...
    local name=$1 t0 rc
    shift
    say "$name"
    t0=$(date +%s)
    "$@" && rc=0 || rc=$?
    say "$name: $([ $rc = 0 ] && echo passed || echo FAILED) in $(($(date +%s) - t0)) s"
    [ $rc = 0 ] || failed=1
}
# Under qemu ONNX Runtime and the models run one to two orders of magnitude slower than here:
# HARK_TEST_SLOW multiplies the tests' deadlines (tests/common/slow.rs), nothing else.
emulated() { # test binary, then its arguments; the tests' hark children run under qemu too
    env ORT_DYLIB_PATH="$ORT_AARCH64" HARK_TEST_EMULATOR=qemu-aarch64-static \
        HARK_TEST_SLOW="${HARK_TEST_SLOW:-10}" \
        qemu-aarch64-static "$@" --test-threads 2
}

step "1/3 aarch64 unit tests, all of them (qemu, $QEMU_CPU)" \
    emulated "$lib_tests"
step "2/3 aarch64 golden cases, models, daemon and socket (qemu, $QEMU_CPU)" \
    emulated "$it_tests" frontend_golden:: models:: \
    daemon_socket::hello_first_then_events_in_order_filters_apply_and_a_bad_request_keeps_the_connection
# The comparison runs in this machine's test binary: it runs both builds' `hark classify`.
step "3/3 aarch64 vs x86_64 classify on the real recordings" \
    env HARK_TEST_AARCH64_HARK="$OUT/hark" HARK_TEST_AARCH64_ORT="$ORT_AARCH64" \
    ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$ROOT/third_party/onnxruntime/libonnxruntime.so}" \
    cargo test --release --locked --test it aarch64:: -- --nocapture --test-threads 1

say "$([ $failed = 0 ] && echo passed || echo FAILED) in $(($(date +%s) - started)) s"
exit $failed
