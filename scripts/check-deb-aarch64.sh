#!/usr/bin/env bash
# Install the arm64 .deb into a fresh arm64 Debian 12 root and run it there, under
# qemu-user-static through binfmt_misc (docs/raspberry-pi.md, "Verified under emulation"):
#   1. the root: `mmdebstrap --arch=arm64 --variant=minbase bookworm` with the package's
#      dependencies preinstalled, kept as target/arm64-root.tar and unpacked afresh each run
#   2. `apt-get install ./hark_*_arm64.deb` in it, offline: the postinst creates the user and
#      group hark, its download of ONNX Runtime and the model fails (PyPI and crates.io are
#      pointed at a closed port) and the installation still succeeds, saying what to do
#   3. the offline way out: `/usr/share/hark/fetch-assets.sh --from DIR`, DIR holding the aarch64
#      wheel's ONNX Runtime and the model, as a checkout where scripts/setup.sh ran would
#   4. inside the root: `hark --version`, `hark model info` (loads ONNX Runtime and CED-tiny),
#      `hark check-config /etc/hark/hark.toml`, and `hark classify` of the door-knock recording
#   5. the package's files: owners and modes, the unit, the conffile, `dpkg --verify`
# Not checked here (no systemd and no audio device in a chroot): the service starting under
# systemd, capture from a microphone. See docs/raspberry-pi.md for the checklist on a real Pi.
# Usage: scripts/check-deb-aarch64.sh [DEB]   (default: the newest target/debian/hark_*_arm64.deb)
# Needs root (chroot, binfmt_misc), mmdebstrap, qemu-user-static, arch-test; the Debian mirror
# for the first run only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR=$PWD
TARBALL=$ROOT_DIR/target/arm64-root.tar
CHROOT=$ROOT_DIR/target/arm64-root
ORT_AARCH64=$ROOT_DIR/third_party/onnxruntime-aarch64
MIRROR=${MIRROR:-http://deb.debian.org/debian}

say() { printf '\033[1mhark check-deb-aarch64:\033[0m %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (chroot and binfmt_misc need it)"
deb=${1:-$(ls -t target/debian/hark_*_arm64.deb 2>/dev/null | head -n1 || true)}
[ -n "$deb" ] && [ -e "$deb" ] || fail "no arm64 .deb: run scripts/build-aarch64.sh --deb"
[ -e "$ORT_AARCH64/libonnxruntime.so.1.31.1" ] || fail "no aarch64 ONNX Runtime: run scripts/build-aarch64.sh"
for p in mmdebstrap qemu-user-static arch-test; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null
done

# --- binfmt_misc: the kernel hands arm64 executables to qemu (the P, O and F flags of Debian's
# qemu-user-static: F loads the interpreter now, so it works inside the chroot) ---------------
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    say "registering qemu-aarch64 with binfmt_misc"
    cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
fi
arch-test arm64 >/dev/null || fail "arm64 executables do not run here (arch-test arm64)"

# --- 1. a fresh arm64 Debian 12 root -------------------------------------------------------------
if [ ! -s "$TARBALL" ]; then
    say "making the arm64 Debian 12 root with mmdebstrap ($MIRROR)"
    mmdebstrap --arch=arm64 --variant=minbase \
        --include=adduser,python3,python3-pip,libasound2,libpulse0,ca-certificates,file \
        bookworm "$TARBALL" "$MIRROR"
fi
umount "$CHROOT/sys" 2>/dev/null || true
rm -rf --one-file-system "$CHROOT"
mkdir -p "$CHROOT"
tar -C "$CHROOT" -xf "$TARBALL"
# qemu-user shows the host's x86 /proc/cpuinfo, on which ONNX Runtime's CPU detection crashes:
# the root gets no /proc mount, and a Cortex-A72's (a Pi 4's) /proc/cpuinfo as a plain file. It
# also reads the lists of CPUs in /sys/devices/system/cpu: the host's /sys, read-only.
mount --bind /sys "$CHROOT/sys"
mount -o remount,bind,ro "$CHROOT/sys"
trap 'umount "$CHROOT/sys" 2>/dev/null || true' EXIT
for ((i = 0; i < $(getconf _NPROCESSORS_ONLN); i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$i"
done > "$CHROOT/proc/cpuinfo"
# qemu emulates a Cortex-A72 like the Pi 4's (its default, "max", has SVE, i8mm and bf16, which
# no Pi has and which make ONNX Runtime choose other kernels); every process of the root gets it.
export QEMU_CPU=cortex-a72
in_root() {
    chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        QEMU_CPU=$QEMU_CPU "$@"
}

# --- 2. install, offline ---------------------------------------------------------------------------
cp "$deb" "$CHROOT/tmp/"
say "apt-get install $(basename "$deb") in the arm64 root, with PyPI and crates.io unreachable"
log=$ROOT_DIR/target/arm64-root-install.log
in_root PIP_INDEX_URL=http://127.0.0.1:9/simple PIP_RETRIES=0 PIP_TIMEOUT=2 \
    HARK_CRATES_DL=http://127.0.0.1:9/crates DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "/tmp/$(basename "$deb")" > "$log" 2>&1 \
    || { cat "$log"; fail "apt-get install"; }
grep -q "ONNX Runtime or the model is missing" "$log" \
    || { cat "$log"; fail "the postinst did not say what is missing"; }
in_root getent passwd hark | grep -q '^hark:' || fail "the postinst made no user hark"
in_root getent group hark >/dev/null || fail "the postinst made no group hark"
say "installed; the postinst made the user and group hark and said: $(grep -m1 'hark:' "$log")"

# --- 3. the offline way to the assets ----------------------------------------------------------------
staging=$CHROOT/tmp/hark-assets
mkdir -p "$staging/third_party/onnxruntime" "$staging/models"
cp -L "$ORT_AARCH64"/libonnxruntime*.so.* "$ORT_AARCH64"/libonnxruntime_providers_shared.so \
    "$staging/third_party/onnxruntime/"
cp models/ced-tiny.onnx models/ced-tiny.labels.csv "$staging/models/"
in_root /usr/share/hark/fetch-assets.sh --from /tmp/hark-assets || fail "fetch-assets.sh --from"
in_root file -L /usr/lib/hark/libonnxruntime.so | grep -q 'ARM aarch64' \
    || fail "/usr/lib/hark/libonnxruntime.so is not the aarch64 library"

# --- 4. the binary in the root -------------------------------------------------------------------------
in_root file /usr/bin/hark | grep -q 'ARM aarch64' || fail "/usr/bin/hark is not an aarch64 binary"
say "$(in_root hark --version)"
info=$(in_root hark model info) || fail "hark model info"
printf '%s\n' "$info"
grep -q 'ced-tiny' <<< "$info" || fail "hark model info does not name ced-tiny"
in_root hark check-config /etc/hark/hark.toml > "$ROOT_DIR/target/arm64-root-check-config.txt" \
    || fail "hark check-config /etc/hark/hark.toml"
say "hark check-config /etc/hark/hark.toml: valid ($(wc -l < "$ROOT_DIR/target/arm64-root-check-config.txt") lines)"
knock=../shared/data/recordings/door_knock_Door5.wav
if [ -e "$knock" ]; then
    cp "$knock" "$CHROOT/tmp/"
    heard=$(in_root hark --log warn classify --format json /tmp/door_knock_Door5.wav | tail -n1)
    grep -q '"label":"Knock"' <<< "$heard" || fail "hark classify did not hear the knock: $heard"
    say "hark classify /tmp/door_knock_Door5.wav: $heard"
else
    say "SKIPPED: $knock not found (hark classify in the root)"
fi

# --- 5. the package's files ----------------------------------------------------------------------------
in_root dpkg --verify hark || fail "dpkg --verify hark"
stat -c '%U:%G %a %n' "$CHROOT/usr/bin/hark" "$CHROOT/etc/hark/hark.toml" \
    "$CHROOT/usr/lib/systemd/system/hark.service" "$CHROOT/usr/share/hark/fetch-assets.sh"
in_root dpkg-query -W -f='${Conffiles}\n' hark | grep -q /etc/hark/hark.toml \
    || fail "/etc/hark/hark.toml is not a conffile"
say "passed: installed, postinst offline path, fetch-assets --from, model info, check-config, classify"
