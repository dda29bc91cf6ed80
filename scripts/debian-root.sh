# Shared by scripts/test-package and scripts/container (sourced, not run): the fresh Debian 12 root of
# Fixtures/build-debian-root unpacked, the package installed there with apt as a user would, and the mounts that
# takes undone. The caller sets $root (an empty directory), $work (its scratch) and defines log and die.

# The archive of what apt downloads, kept for the next run.
debian_root_archives=${IMGCUSTOMIZE_FIXTURES_DIR:-$HOME/.cache/imgcustomize/fixtures}/package-archives
debian_root_mounts=()

# Unmounts what debian_root_mount and debian_root_bind mounted, innermost first; safe to call twice.
debian_root_unmount() {
  local i
  for ((i = ${#debian_root_mounts[@]} - 1; i >= 0; i--)); do
    umount -R "${debian_root_mounts[$i]}" 2>/dev/null || umount -lR "${debian_root_mounts[$i]}" 2>/dev/null ||
      log "could not unmount ${debian_root_mounts[$i]}"
  done
  debian_root_mounts=()
}

debian_root_bind() {  # debian_root_bind SOURCE TARGET [ro]
  mkdir -p "$2"
  mount --rbind "$1" "$2"
  debian_root_mounts+=("$2")
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}

in_root() {
  chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# /proc, /sys, /dev, the kept archive of apt's downloads and the host's resolver, for apt and what runs in $root.
debian_root_mount() {
  mount -t proc proc "$root/proc"; debian_root_mounts+=("$root/proc")
  mount -t sysfs sysfs "$root/sys"; debian_root_mounts+=("$root/sys")
  debian_root_bind /dev "$root/dev"
  mkdir -p "$debian_root_archives/partial"
  debian_root_bind "$debian_root_archives" "$root/var/cache/apt/archives"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
}

# Downloads into the kept archive as root: the bind-mounted cache is not _apt's to write.
debian_root_apt() {
  in_root apt-get -o APT::Sandbox::User=root -o Dpkg::Options::=--force-unsafe-io "$@"
}

# debian_root_install DEB: unpacks the root into $root, mounts /proc, /sys, /dev and the kept archive, and installs
# DEB with apt, which resolves its dependencies from the archive. apt's log is $work/apt.log; the number of packages
# apt set up is left in $debian_root_installed (not printed: a command substitution's subshell would lose the mounts).
debian_root_install() {
  local deb=$1 tarball
  tarball=$(Fixtures/build-debian-root)
  tar -xf "$tarball" -C "$root"
  [ ! -e "$root/opt/swift" ] && ! chroot "$root" sh -c 'command -v swift' >/dev/null ||
    die "the Debian root has a Swift toolchain; it must have none"
  debian_root_mount
  cp "$deb" "$root/tmp/"
  # Services are not started in a chroot (a package's postinst may try).
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"

  # Nothing here boots the root's own kernel (the appliance boots it with supermin's initramfs), so the kernel's
  # initramfs, which initramfs-tools would otherwise generate twice (minutes under load), is not made.
  in_root dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.real --add /usr/sbin/update-initramfs
  ln -s /bin/true "$root/usr/sbin/update-initramfs"

  debian_root_apt update -qq >"$work/apt.log" 2>&1 ||
    { tail -n 20 "$work/apt.log" >&2; die "apt-get update failed in the Debian root"; }
  # Without Recommends: the package's Depends alone must make it work (a user's apt adds the Recommends on top).
  if ! debian_root_apt install -y -q --no-install-recommends "/tmp/$(basename "$deb")" \
    >>"$work/apt.log" 2>&1; then
    tail -n 30 "$work/apt.log" >&2
    die "apt could not install $(basename "$deb") in a fresh Debian 12 root (above)"
  fi
  debian_root_installed=$(grep -c '^Setting up ' "$work/apt.log" || true)
}
