#!/usr/bin/env bash
# Run a command inside a Debian 12 virtual machine (systemd, cgroup v2 unified), in a copy of this
# checkout, and exit with the command's status.
#
#   scripts/test-vm.sh [--user NAME] [--no-userns] [--timeout SECONDS] [--rebuild] -- COMMAND...
#   scripts/test-vm.sh --prepare [--rebuild]
#
#   --user NAME    run as the non-root user NAME (created if missing) with a systemd user session
#                  (lingering user@UID.service, XDG_RUNTIME_DIR and the user bus set)
#   --no-userns    switch user namespaces off first (user.max_user_namespaces=0)
#   --timeout S    stop the VM after S seconds (default 1800; exit status 124)
#   --rebuild      rebuild the cached VM image
#   --prepare      only build the image when it is missing (CI does this before its tests)
#
# The image (bubblewrap, gcc, PostgreSQL, Redis, MariaDB, Python with the project's dependencies in
# /opt/cleanroom-venv, Debian's cloud kernel) is built once with debootstrap from the mirror apt
# uses and cached in $CLEANROOM_VM_CACHE (default /var/cache/cleanroom/vm); it is rebuilt when its
# inputs (package list, guest scripts, pyproject.toml) change. Every run boots a copy-on-write
# overlay of it with qemu: KVM when it boots there, software emulation (TCG) otherwise. The
# checkout (tracked and untracked files, not ignored ones) is copied onto a second disk; the guest
# installs it into the virtualenv in editable mode and runs COMMAND from its top directory. The
# command's output streams to this terminal; the guest's console log is kept in the run directory
# when the run fails. The guest has no network interface.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
CACHE=${CLEANROOM_VM_CACHE:-/var/cache/cleanroom/vm}
# Bump when the image recipe below changes.
RECIPE=3
# gcc and libc6-dev: the unshare backend compiles its set-up step (_nsinit.c) as on the host.
PACKAGES=(systemd systemd-sysv dbus libpam-systemd udev linux-image-cloud-amd64 initramfs-tools
  bubblewrap util-linux uidmap keyutils postgresql redis-server mariadb-server git make procps
  iproute2 kmod python3 python3-venv python3-dev gcc libc6-dev ca-certificates e2fsprogs)
MEMORY_MB=${CLEANROOM_VM_MEMORY_MB:-4096}

progress() { printf '[test-vm] %s\n' "$*" >&2; }
die() {
  printf '[test-vm] error: %s\n' "$*" >&2
  exit 2
}
usage() {
  sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
# shellcheck source=lib/debian.sh
source scripts/lib/debian.sh

user= no_userns=0 timeout_s=1800 rebuild=0 prepare=0
while (($#)); do
  case $1 in
    --user) [[ $# -ge 2 && -n $2 ]] || die "--user needs a user name"; user=$2; shift 2 ;;
    --no-userns) no_userns=1; shift ;;
    --timeout) [[ ${2:-} =~ ^[0-9]+$ ]] || die "--timeout needs a number of seconds"; timeout_s=$2; shift 2 ;;
    --rebuild) rebuild=1; shift ;;
    --prepare) prepare=1; shift ;;
    --) shift; break ;;
    -h | --help) usage ;;
    *) die "unknown argument $1 (the command comes after --; see --help)" ;;
  esac
done
((prepare || $#)) || die "no command given: scripts/test-vm.sh [options] -- COMMAND..."
[[ -z $user || $user =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] || die "--user $user is not a valid user name"
[[ $user != root ]] || die "--user root: leave --user out to run as root"
[[ $(id -u) -eq 0 ]] || die "building and booting the VM needs root (debootstrap, mkfs): run 'sudo $0'"
for tool in qemu-system-x86_64 qemu-img mkfs.ext4 debugfs debootstrap; do
  command -v "$tool" >/dev/null ||
    die "$tool is not installed: apt-get install qemu-system-x86 qemu-utils e2fsprogs debootstrap (or scripts/setup.sh --vm)"
done

# --- the cached image ------------------------------------------------------------------------------
mirror=$(apt_mirror)
inputs=$(
  printf '%s\n' "$SUITE" "$mirror" "$RECIPE" "${PACKAGES[@]}"
  cat scripts/vm/cleanroom-job.service
  # The dependencies only: other changes to pyproject.toml do not need a new image.
  python3 -c 'import json, sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]
json.dump([p.get("dependencies"), p.get("optional-dependencies")], sys.stdout, sort_keys=True)'
) 
key=$(printf '%s' "$inputs" | sha256sum | cut -c1-16)
image_dir=$CACHE/debian12-$key
work=
cleanup_build() { remove_build_dir "$work"; }

build_image() {
  mkdir -p "$CACHE"
  work=$(mktemp -d "$CACHE/build.XXXXXX")
  trap cleanup_build EXIT
  local root=$work/root
  mkdir -p "$root/usr/sbin"
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
  local include
  # The Debian part is cached on its own (it is the slow part): a change of the Python
  # dependencies or of the job service reuses it.
  local base_tar
  base_tar=$CACHE/rootfs-$(printf '%s\n' "$SUITE" "$mirror" "${PACKAGES[@]}" | sha256sum | cut -c1-16).tar
  if [[ -f $base_tar ]]; then
    tar --numeric-owner -C "$root" -xf "$base_tar"
  else
    include=$(IFS=,; printf '%s' "${PACKAGES[*]}")
    progress "building the VM image: debootstrap $SUITE from $mirror (several minutes once; cached in $CACHE)"
    if ! debootstrap --variant=minbase --include="$include" "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
      tail -n 25 "$work/debootstrap.log" >&2
      die "debootstrap failed (log above)"
    fi
    stop_chroot_processes "$root"
    find "$CACHE" -maxdepth 1 -name 'rootfs-*.tar' -delete
    tar --numeric-owner -C "$root" -cf "$base_tar.partial" . && mv -f "$base_tar.partial" "$base_tar"
  fi
  progress "installing the project's Python dependencies into /opt/cleanroom-venv"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  local cert=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
  [[ -f $cert ]] && cp "$cert" "$root/etc/ssl/certs/host-ca.crt"
  mkdir -p "$root/opt/cleanroom-src"
  cp -a pyproject.toml README.md src example_gpacks "$root/opt/cleanroom-src/"
  chroot "$root" python3 -m venv /opt/cleanroom-venv
  if ! chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ${PIP_DEFAULT_TIMEOUT:+PIP_DEFAULT_TIMEOUT=$PIP_DEFAULT_TIMEOUT} \
    PIP_CERT="$([[ -f $root/etc/ssl/certs/host-ca.crt ]] && echo /etc/ssl/certs/host-ca.crt || echo /etc/ssl/certs/ca-certificates.crt)" \
    sh -c '/opt/cleanroom-venv/bin/pip install -q "/opt/cleanroom-src[dev]" editables &&
           /opt/cleanroom-venv/bin/pip uninstall -q -y pytest-cleanroom &&
           /opt/cleanroom-venv/bin/pip install -q --no-deps --target /opt/cleanroom-venv/opt/pytest-asyncio "pytest-asyncio>=0.23" &&
           /opt/cleanroom-venv/bin/pip install -q --no-deps --target /opt/cleanroom-venv/opt/pytest-django "pytest-django>=4.8"' \
    >"$work/pip.log" 2>&1; then
    tail -n 25 "$work/pip.log" >&2
    die "installing the Python dependencies in the image failed (log above)"
  fi
  stop_chroot_processes "$root"
  rm -rf "$root/opt/cleanroom-src" "$root/etc/ssl/certs/host-ca.crt" "$root/usr/sbin/policy-rc.d"
  : >"$root/etc/resolv.conf"
  # The machine: host name, root file system, serial consoles, the job service, no clusters.
  printf 'cleanroom-vm\n' >"$root/etc/hostname"
  printf '/dev/vda / ext4 rw,relatime 0 1\n' >"$root/etc/fstab"
  install -m 0644 scripts/vm/cleanroom-job.service "$root/etc/systemd/system/cleanroom-job.service"
  chroot "$root" systemctl enable cleanroom-job.service >/dev/null 2>&1
  chroot "$root" systemctl mask serial-getty@ttyS0.service serial-getty@ttyS1.service \
    getty@tty1.service apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service >/dev/null 2>&1
  chroot "$root" systemctl disable postgresql.service redis-server.service mariadb.service >/dev/null 2>&1 || true
  rm -rf "$root/etc/postgresql/15/main" "$root/var/lib/postgresql/15"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  local kernel initrd
  kernel=$(find "$root/boot" -name 'vmlinuz-*' | sort | tail -n 1)
  initrd=$(find "$root/boot" -name 'initrd.img-*' | sort | tail -n 1)
  [[ -n $kernel && -n $initrd ]] || die "the image has no kernel or initrd in /boot"
  mkdir -p "$work/out"
  cp "$kernel" "$work/out/vmlinuz"
  cp "$initrd" "$work/out/initrd.img"
  progress "writing the disk image"
  mkfs.ext4 -q -F -L cleanroom-vm -d "$root" "$work/out/disk.raw" 6G >/dev/null
  printf '%s\n' "$inputs" >"$work/out/inputs"
  rm -rf "$image_dir"
  mv "$work/out" "$image_dir"
  cleanup_build
  work=
  trap - EXIT
  # Older images of other inputs are of no further use.
  find "$CACHE" -maxdepth 1 -name 'debian12-*' ! -name "debian12-$key" -exec rm -rf {} +
}

# One build at a time; a build waits for the runs under way (they boot overlays of the image).
mkdir -p "$CACHE"
exec {lock_fd}>"$CACHE/.lock"
if ((rebuild)) || [[ ! -f $image_dir/disk.raw ]]; then
  flock -x "$lock_fd"
  if ((rebuild)) || [[ ! -f $image_dir/disk.raw ]]; then
    started=$SECONDS
    build_image
    progress "image built in $((SECONDS - started)) s: $image_dir"
  fi
fi
flock -s "$lock_fd"
((prepare)) && exit 0

# --- one run ---------------------------------------------------------------------------------------
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/cleanroom-vm.XXXXXX")
qemu_pid=
on_exit() {
  [[ -n $qemu_pid ]] && kill -KILL "$qemu_pid" 2>/dev/null
  rm -rf "$run_dir"
}
trap on_exit EXIT
job=$run_dir/job
mkdir -p "$job/checkout"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [[ -e $f || -L $f ]] && printf '%s\0' "$f"
done | tar --null -T - -cf - | tar -C "$job/checkout" -xf -
printf '%s\0' "$@" >"$job/argv"
install -m 0755 scripts/vm/cleanroom-job "$job/cleanroom-job"
{
  printf 'JOB_USER=%q\n' "$user"
  printf 'JOB_NO_USERNS=%q\n' "$no_userns"
  printf 'JOB_CI=%q\n' "${CI:-}"
} >"$job/job.env"
mkfs.ext4 -q -F -L cleanroom-job -d "$job" "$run_dir/job.raw" 4G >/dev/null
qemu-img create -q -f qcow2 -b "$image_dir/disk.raw" -F raw "$run_dir/root.qcow2"

# KVM when a guest boots there (on some hosts it hangs after the kernel is decompressed), else TCG.
accel_verdict=$CACHE/kvm-verdict-$(uname -r)
accel=tcg
if [[ -w /dev/kvm && $(cat "$accel_verdict" 2>/dev/null) != no ]]; then accel=kvm; fi

boot() {
  local accel=$1 cpu=max
  # no_timer_check: under emulation on a loaded host the kernel's check of the IO-APIC timer can
  # miss its ticks and panic at boot ("IO-APIC + timer doesn't work!", seen at load 23).
  qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -smp 2 -m "$MEMORY_MB" -nographic -no-reboot \
    -kernel "$image_dir/vmlinuz" -initrd "$image_dir/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 panic=-1 systemd.unified_cgroup_hierarchy=1 systemd.show_status=0 quiet no_timer_check" \
    -drive "file=$run_dir/root.qcow2,if=virtio,format=qcow2" \
    -drive "file=$run_dir/job.raw,if=virtio,format=raw" \
    -nic none -serial "file:$run_dir/console.log" -serial "file:$run_dir/job.log" \
    -monitor none </dev/null &
  qemu_pid=$!
}

# Waits for the guest to power off, streaming the job's output; 0 when it did, 1 on a boot timeout.
follow() {
  local deadline=$1 boot_deadline=$2 printed=0 size
  while kill -0 "$qemu_pid" 2>/dev/null; do
    size=$(stat -c %s "$run_dir/job.log" 2>/dev/null || echo 0)
    if ((size > printed)); then
      tail -c +"$((printed + 1))" "$run_dir/job.log" | head -c "$((size - printed))"
      printed=$size
    fi
    if ((printed == 0 && boot_deadline > 0 && SECONDS > boot_deadline)); then return 1; fi
    if ((SECONDS > deadline)); then return 2; fi
    sleep 0.5
  done
  size=$(stat -c %s "$run_dir/job.log" 2>/dev/null || echo 0)
  ((size > printed)) && tail -c +"$((printed + 1))" "$run_dir/job.log"
  return 0
}

job_status() { debugfs -R 'cat /exit-status' "$run_dir/job.raw" 2>/dev/null | tr -dc '0-9'; }

progress "booting Debian 12 ($accel, ${MEMORY_MB} MiB, 2 CPUs)${user:+ as $user}$( ((no_userns)) && echo ', user namespaces off')"
boot "$accel"
status=0
if [[ $accel == kvm ]]; then
  follow $((SECONDS + timeout_s)) $((SECONDS + 60)) || status=$?
  if ((status == 1)) || { ((status == 0)) && [[ -z $(job_status) && ! -s $run_dir/job.log ]]; }; then
    progress "the guest did not start under KVM: using software emulation (TCG) from now on (remembered in $accel_verdict)"
    echo no >"$accel_verdict"
    kill -KILL "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
    qemu-img create -q -f qcow2 -b "$image_dir/disk.raw" -F raw "$run_dir/root.qcow2"
    : >"$run_dir/job.log"
    accel=tcg status=0
    boot tcg
  fi
fi
if [[ $accel == tcg ]]; then
  follow $((SECONDS + timeout_s)) 0 || status=$?
fi
if ((status == 2)); then
  progress "timed out after ${timeout_s} s; the guest's console:"
  tail -n 40 "$run_dir/console.log" >&2
  exit 124
fi
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=
exit_status=$(job_status)
if [[ -z $exit_status ]]; then
  progress "the guest stopped without running the command; its console:"
  tail -n 60 "$run_dir/console.log" >&2
  exit 125
fi
exit "$exit_status"
