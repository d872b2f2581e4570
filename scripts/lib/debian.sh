# Shell functions shared by the scripts that build Debian root file systems (build-images.sh,
# vm-image.sh). Source it after defining SUITE and a die() function.

# The Debian mirror apt uses.
# First "deb" source serving the suite itself (not -updates/-security), from sources.list, *.list
# (one-line format) or *.sources (deb822). CLEANROOM_DEBIAN_MIRROR overrides it.
apt_mirror() {
  if [[ -n ${CLEANROOM_DEBIAN_MIRROR:-} ]]; then
    printf '%s\n' "${CLEANROOM_DEBIAN_MIRROR%/}"
    return
  fi
  local f found=
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    if [[ $f == *.sources ]]; then
      found=$(awk -v suite="$SUITE" '
        function flush() {
          if (!done && types ~ /(^| )deb( |$)/ && tolower(enabled) != "no" &&
              (" " suites " ") ~ (" " suite " ") && uris != "") {
            split(uris, u, " "); print u[1]; done = 1
          }
          types = uris = suites = enabled = ""; last = ""
        }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[ \t]/ { if (last == "uris") uris = uris " " $0; else if (last == "suites") suites = suites " " $0; next }
        {
          key = tolower($1); sub(/:$/, "", key); $1 = ""; last = key
          if (key == "types") types = $0; else if (key == "uris") uris = $0
          else if (key == "suites") suites = $0; else if (key == "enabled") enabled = $2
        }
        END { flush() }' "$f")
    else
      found=$(awk -v suite="$SUITE" '
        $1 == "deb" {
          i = 2
          if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
          if ($(i + 1) == suite || $(i + 1) == suite "/") { print $i; exit }
        }' "$f")
    fi
    if [[ -n $found ]]; then
      printf '%s\n' "${found%/}"
      return
    fi
  done
  die "no 'deb' source for $SUITE in /etc/apt/sources.list or /etc/apt/sources.list.d/;" \
    "set CLEANROOM_DEBIAN_MIRROR=http://<your mirror>/debian"
}

# Stop any process that runs inside the new rootfs (a package's postinst could start a daemon).
stop_chroot_processes() {
  local root=$1 pid
  for pid in /proc/[0-9]*; do
    [[ $(readlink "$pid/root" 2>/dev/null) == "$root" ]] && kill -KILL "${pid#/proc/}" 2>/dev/null
  done
  return 0
}

# Unmount whatever is mounted below $1 (deepest first), then remove it; never rm -rf through a mount.
remove_build_dir() {
  local dir=$1 m
  [[ -n $dir && -d $dir ]] || return 0
  for m in $(findmnt -rn -o TARGET | { grep -F "$dir/" || true; } | sort -r); do umount -l "$m" || true; done
  if findmnt -rn -o TARGET | grep -qF "$dir/"; then
    printf 'warning: mounts left under %s; not removing it\n' "$dir" >&2
    return 0
  fi
  rm -rf "$dir"
}
