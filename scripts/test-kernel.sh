#!/usr/bin/env bash
# End-to-end test of `livepatch kernel` on a real kernel: Debian's kernel booted in qemu (TCG), an initramfs holding
# node, the command and kernel/livepatch-cmdline.ko built against that kernel's headers. Skips (exit 0) without tools.
#
# CI needs: apt-get install -y qemu-system-x86 linux-image-amd64 linux-headers-amd64 busybox-static cpio kmod
# (plus gcc and make). LIVEPATCH_KERNEL_RELEASE picks the kernel; the transcript is kept in
# $LIVEPATCH_KERNEL_TRANSCRIPT (default: a file in $TMPDIR, printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
  echo "test:kernel: skipped: $1"
  exit 0
}

for tool in qemu-system-x86_64 cpio make gcc node; do
  command -v "$tool" >/dev/null || skip "$tool missing"
done
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || skip "busybox missing (apt-get install busybox-static)"
# The guest has no libc for busybox: it must be the static build.
if ldd "$BUSYBOX" >/dev/null 2>&1; then skip "busybox is not static (apt-get install busybox-static)"; fi

# The kernel: the newest /boot/vmlinuz-* whose headers are installed (linux-image-amd64 + linux-headers-amd64).
KVER=${LIVEPATCH_KERNEL_RELEASE:-}
if [ -z "$KVER" ]; then
  for image in $(ls -v /boot/vmlinuz-* 2>/dev/null); do
    v=${image#/boot/vmlinuz-}
    [ -d "/lib/modules/$v/build" ] && KVER=$v
  done
fi
[ -n "$KVER" ] || skip "no /boot/vmlinuz-* with matching /lib/modules/*/build (linux-image-amd64, linux-headers-amd64)"
KERNEL=/boot/vmlinuz-$KVER
[ -r "$KERNEL" ] || skip "$KERNEL is not readable"
grep -q '^CONFIG_LIVEPATCH=y' "/lib/modules/$KVER/build/.config" 2>/dev/null ||
  grep -q '^CONFIG_LIVEPATCH=y' "/boot/config-$KVER" 2>/dev/null || skip "kernel $KVER has no CONFIG_LIVEPATCH"

echo "test:kernel: kernel $KVER, $(qemu-system-x86_64 --version | head -1)"
[ -f dist/src/kernel/cli.js ] || npm run build
make -s -C kernel/livepatch-cmdline KERNEL_RELEASE="$KVER" >/dev/null
make -s -C kernel/livepatch-busy KERNEL_RELEASE="$KVER" >/dev/null

WORK=$(mktemp -d "${TMPDIR:-/tmp}/livepatch-kernel-e2e.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,proc,sys,dev,tmp,livepatch/dist/src/kernel}
cp "$BUSYBOX" "$ROOT/bin/busybox"
cp kernel/e2e/init.sh "$ROOT/init"
chmod +x "$ROOT/init"
# node and the shared libraries it links against, at the same paths.
NODE=$(readlink -f "$(command -v node)")
cp "$NODE" "$ROOT/bin/node"
for lib in $(ldd "$NODE" | grep -o '/[^ ]*'); do
  mkdir -p "$ROOT$(dirname "$lib")"
  cp -L "$lib" "$ROOT$lib"
done
# The command: the compiled kernel part and the one shared file it imports; ESM needs "type": "module".
cp dist/src/errors.js "$ROOT/livepatch/dist/src/"
cp dist/src/kernel/*.js "$ROOT/livepatch/dist/src/kernel/"
echo '{ "type": "module" }' >"$ROOT/livepatch/package.json"
cp kernel/livepatch-cmdline/livepatch-cmdline.ko kernel/livepatch-busy/{lp-busy-target,livepatch-busy}.ko "$ROOT/livepatch/"
(cd "$ROOT" && find . | cpio -o -H newc --quiet) >"$WORK/initrd.cpio"

TRANSCRIPT=${LIVEPATCH_KERNEL_TRANSCRIPT:-${TMPDIR:-/tmp}/livepatch-kernel-transcript.txt}
echo "test:kernel: booting (initramfs $(du -h "$WORK/initrd.cpio" | cut -f1)); transcript: $TRANSCRIPT"
start=$(date +%s)
# TCG: this machine has no KVM. -no-reboot with panic=-1 turns a guest panic into a qemu exit.
timeout 420 qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 2 -m 1024 \
  -nographic -no-reboot -nic none \
  -kernel "$KERNEL" -initrd "$WORK/initrd.cpio" \
  -append "console=ttyS0 panic=-1 quiet loglevel=4" </dev/null >"$WORK/console.raw" 2>&1 || true
# The console also carries firmware noise and terminal escapes; the transcript starts at the guest's first line.
tr -d '\r' <"$WORK/console.raw" | sed -n '/== guest:/,$p' | sed 's/^.*== guest:/== guest:/' | tee "$TRANSCRIPT"
if ! grep -q '== guest:' "$TRANSCRIPT"; then
  echo "test:kernel: the guest never started the test; console output:"
  tr -d '\r' <"$WORK/console.raw" | tail -40
fi
echo "test:kernel: qemu ran $(($(date +%s) - start))s"
if grep -q '^LIVEPATCH-E2E: PASS' "$TRANSCRIPT"; then
  echo "test:kernel: passed"
  exit 0
fi
echo "test:kernel: FAILED (see $TRANSCRIPT)"
exit 1
