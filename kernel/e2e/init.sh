#!/bin/busybox sh
# PID 1 of the qemu guest: runs `livepatch kernel` against the real kernel with livepatch-cmdline.ko, prints a TAP-like
# transcript and a verdict line that scripts/test-kernel.sh greps for, then powers off.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
export PATH=/bin HOME=/tmp

# Must match LIVEPATCH_CMDLINE_MARKER in kernel/livepatch-cmdline/livepatch-cmdline.c.
MARKER='livepatch-cmdline: patched'
KO=/livepatch/livepatch-cmdline.ko
fail=0
rc=0

# The command line and exit code go to stderr (the console too) so `lp … >file` captures only the command's stdout.
lp() {
  echo "\$ livepatch kernel $*" >&2
  node /livepatch/dist/src/kernel/cli.js "$@"
  rc=$?
  echo "[exit $rc]" >&2
}
check() {
  if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; fail=1; fi
}
# Checks a JSON file with a JavaScript expression over `j`.
json() {
  node -e "const j = JSON.parse(require('fs').readFileSync('$1', 'utf8')); process.exit(($2) ? 0 : 1)"
}

echo "== guest: kernel $(uname -r), node $(node --version)"
original=$(cat /proc/cmdline)
echo "\$ cat /proc/cmdline"; echo "$original"
check "/proc/cmdline is the original before load" '! grep -q "$MARKER" /proc/cmdline'
check "/proc/<pid>/patch_state exists and reads -1 outside a transition" '[ "$(cat /proc/1/patch_state)" = "-1" ]'

lp info "$KO"
check "info exits 0" '[ $rc -eq 0 ]'
lp info "$KO" --json >/tmp/info.json
check "info --json: livepatch module, vermagic matches, name livepatch_cmdline" \
  'json /tmp/info.json "j.livepatch && j.vermagicMatches && j.name === \"livepatch_cmdline\""'

lp load "$KO"
check "load exits 0" '[ $rc -eq 0 ]'
echo "\$ cat /proc/cmdline"; cat /proc/cmdline
check "/proc/cmdline shows the marker after load" 'grep -q "$MARKER" /proc/cmdline'

lp list
lp list --json >/tmp/list.json
cat /tmp/list.json
check "list --json: livepatch_cmdline enabled, vmlinux patched, cmdline_proc_show,1" \
  'json /tmp/list.json "j.patches.length === 1 && j.patches[0].name === \"livepatch_cmdline\" && j.patches[0].enabled && !j.patches[0].transition && j.patches[0].objects[0].name === \"vmlinux\" && j.patches[0].objects[0].patched && j.patches[0].objects[0].funcs[0].name === \"cmdline_proc_show\" && j.patches[0].objects[0].funcs[0].sympos === 1"'

lp load "$KO"
check "a second load is refused (exit 1)" '[ $rc -eq 1 ]'

# As an ordinary user (uid 65534, no capabilities): the command's own check, and a real sysfs EACCES explained.
# `node -e` has no script argument, so one is spliced in where cli.js expects argv[2].
as_nobody() {
  echo "\$ (as uid 65534) livepatch kernel $*" >&2
  node -e 'process.setgid(65534); process.setuid(65534); process.argv.splice(1, 0, "cli"); import("/livepatch/dist/src/kernel/cli.js")' "$@" 2>/tmp/nobody.txt
  rc=$?
  cat /tmp/nobody.txt >&2
  echo "[exit $rc]" >&2
}
as_nobody load "$KO"
check "load as a user without CAP_SYS_MODULE is refused with a clear message" \
  '[ $rc -eq 1 ] && grep -q "needs root (CAP_SYS_MODULE)" /tmp/nobody.txt'
as_nobody disable livepatch_cmdline
check "disable as a user: the kernel's EACCES on 'enabled' is explained" \
  '[ $rc -eq 1 ] && grep -q "permission denied writing .*/enabled.*(run as root)" /tmp/nobody.txt'
check "the patch is still enabled" '[ "$(cat /sys/kernel/livepatch/livepatch_cmdline/enabled)" = 1 ]'

lp disable livepatch_cmdline
check "disable exits 0" '[ $rc -eq 0 ]'
echo "\$ cat /proc/cmdline"; cat /proc/cmdline
check "/proc/cmdline is the original after disable" '[ "$(cat /proc/cmdline)" = "$original" ]'
check "the patch left /sys/kernel/livepatch" '[ ! -e /sys/kernel/livepatch/livepatch_cmdline ]'

lp enable livepatch_cmdline
check "enable after disable is refused (exit 1): a disabled patch cannot be re-enabled" '[ $rc -eq 1 ]'

lp unload livepatch_cmdline
check "unload exits 0" '[ $rc -eq 0 ]'
check "the module is gone from /sys/module" '[ ! -e /sys/module/livepatch_cmdline ]'
echo "\$ cat /proc/cmdline"; cat /proc/cmdline
check "/proc/cmdline is the original after unload" '[ "$(cat /proc/cmdline)" = "$original" ]'

# Second round: unload straight from enabled (disable, wait, rmmod in one command), with --json.
lp load "$KO" --json >/tmp/load.json
cat /tmp/load.json
check "load --json exits 0 with result complete" '[ $rc -eq 0 ] && json /tmp/load.json "j.result === \"complete\""'
check "/proc/cmdline shows the marker again" 'grep -q "$MARKER" /proc/cmdline'
lp unload livepatch_cmdline
check "unload of an enabled patch exits 0" '[ $rc -eq 0 ]'
check "/proc/cmdline is the original at the end" '[ "$(cat /proc/cmdline)" = "$original" ]'

# A real stall: lp_busy_target's worker sleeps (uninterruptibly) inside busy_target_sleep(), which
# livepatch_busy patches, so the patching transition cannot finish until the sleep ends.
echo "\$ insmod /livepatch/lp-busy-target.ko block_ms=300000" >&2
insmod /livepatch/lp-busy-target.ko block_ms=300000
sleep 1
lp load /livepatch/livepatch-busy.ko --timeout 5 >/tmp/stall.txt
cat /tmp/stall.txt
check "a stalled load exits 3" '[ $rc -eq 3 ]'
check "it shows the blocking kworker with a kernel stack through busy_target_sleep" \
  'grep -q "kworker" /tmp/stall.txt && grep -q "busy_target_sleep" /tmp/stall.txt'
lp load "$KO"
check "load while another patch is in transition is refused, naming it" '[ $rc -eq 1 ]'
lp list
lp list --json >/tmp/stall.json
check "list --json: livepatch_busy in transition, a kworker among the pending tasks" \
  'json /tmp/stall.json "j.transition && j.transition.patch === \"livepatch_busy\" && j.transition.target === \"patched\" && j.transition.tasks.some((t) => t.comm.startsWith(\"kworker\"))"'
lp disable livepatch_busy
check "disable reverses the stalled transition and the patch is freed" \
  '[ $rc -eq 0 ] && [ ! -e /sys/kernel/livepatch/livepatch_busy ]'
lp unload livepatch_busy
check "unload after the reversal removes the module" '[ $rc -eq 0 ] && [ ! -e /sys/module/livepatch_busy ]'

lp load /livepatch/livepatch-busy.ko --timeout 3 --reverse-on-timeout
check "--reverse-on-timeout: exit 1, the patch and its module are gone" \
  '[ $rc -eq 1 ] && [ ! -e /sys/kernel/livepatch/livepatch_busy ] && [ ! -e /sys/module/livepatch_busy ]'

lp load /livepatch/livepatch-busy.ko --timeout 3
check "stalled again (exit 3)" '[ $rc -eq 3 ]'
lp force livepatch_busy
check "force completes the patching transition" \
  '[ $rc -eq 0 ] && [ "$(cat /sys/kernel/livepatch/livepatch_busy/transition)" = 0 ]'
lp unload livepatch_busy
check "a forced patching transition of a non-replace patch does not pin its module: unload works" \
  '[ $rc -eq 0 ] && [ ! -e /sys/module/livepatch_busy ]'

lp install "$KO" --root /tmp/root
check "install --root puts the module under the running release" \
  '[ -f "/tmp/root/var/lib/livepatch/kernel/$(uname -r)/livepatch_cmdline.ko" ]'
lp uninstall livepatch_cmdline --root /tmp/root
check "uninstall removes it" '[ ! -e "/tmp/root/var/lib/livepatch/kernel/$(uname -r)/livepatch_cmdline.ko" ]'

echo "\$ dmesg | grep livepatch"
dmesg | grep -i livepatch

if [ $fail -eq 0 ]; then echo "LIVEPATCH-E2E: PASS"; else echo "LIVEPATCH-E2E: FAIL"; fi
poweroff -f
