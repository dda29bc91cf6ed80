# The images of the distributions beyond RHEL 6 and 7 (RHEL 9, Rocky Linux 9, Ubuntu 24.04, Fedora 40), sourced
# after lib.sh by build-images and check-images. Kept out of lib.sh because build-debian's cache key covers lib.sh:
# adding an image here must not rebuild the Debian guests. lib.sh's functions stay in charge of its own images
# (lib_NAME).

fixture_names+=(rhel9 rocky9 ubuntu2404 fedora40)

for lib_function in fixture_file fixture_root fixture_expected fixture_report; do
  eval "lib_$(declare -f "$lib_function")"
done
unset lib_function

fixture_file() {
  case $1 in
    rhel9 | rocky9 | ubuntu2404 | fedora40) echo "$1.qcow2" ;;
    *) lib_fixture_file "$1" ;;
  esac
}

fixture_root() {
  case $1 in
    rhel9 | rocky9) echo /dev/sda2 ;;
    ubuntu2404) echo /dev/sda1 ;;
    # A btrfs subvolume, as libguestfs names one (Mountable.to_string).
    fedora40) echo btrfsvol:/dev/sda2/root ;;
    *) lib_fixture_root "$1" ;;
  esac
}

# libguestfs 1.48 names a btrfs subvolume's device as the appliance's kernel named it, not translated back as every
# other device name is: the guest's disk is /dev/sdb there when the appliance's own disk was probed first, which
# varies between launches (fedora40's root was btrfsvol:/dev/sdb2/root in one build, btrfsvol:/dev/sda2/root in
# another). Every fixture has one disk, /dev/sda.
fixture_report() {
  sed 's|btrfsvol:/dev/sd[a-z]*|btrfsvol:/dev/sda|g' | lib_fixture_report
}

# What libguestfs 1.48 reports for them (daemon/inspect_fs_unix.ml, lib/inspect-osinfo.c).
fixture_expected() {
  local root
  root=$(fixture_root "$1")
  case $1 in
    rhel9)
      printf '%s\n' "roots: $root" "type: linux" "distro: rhel" "major: 9" "minor: 4" "osinfo: rhel9.4" \
        "product: Red Hat Enterprise Linux 9.4 (Plow)" "hostname: rhel9-build.example.com" \
        "arch: x86_64" "package-format: rpm" "package-management: dnf" "mountpoint: /: $root" \
        "mountpoint: /boot: /dev/sda1"
      ;;
    rocky9)
      # libguestfs's osinfo for Rocky is the major version alone.
      printf '%s\n' "roots: $root" "type: linux" "distro: rocky" "major: 9" "minor: 4" "osinfo: rocky9" \
        "product: Rocky Linux 9.4 (Blue Onyx)" "hostname: rocky9-build.example.com" \
        "arch: x86_64" "package-format: rpm" "package-management: dnf" "mountpoint: /: $root" \
        "mountpoint: /boot: /dev/sda1"
      ;;
    ubuntu2404)
      # VERSION_ID="24.04" is major 24, minor 4; the osinfo id pads the minor to two digits again.
      printf '%s\n' "roots: $root" "type: linux" "distro: ubuntu" "major: 24" "minor: 4" "osinfo: ubuntu24.04" \
        "product: Ubuntu 24.04.1 LTS" "hostname: ubuntu2404-build" \
        "arch: x86_64" "package-format: deb" "package-management: apt" "mountpoint: /: $root"
      ;;
    fedora40)
      # VERSION_ID=40 is major 40, minor 0; fstab's subvol= options make its btrfs entries subvolumes.
      printf '%s\n' "roots: $root" "type: linux" "distro: fedora" "major: 40" "minor: 0" "osinfo: fedora40" \
        "product: Fedora Linux 40 (Cloud Edition)" "hostname: fedora40-build.example.com" \
        "arch: x86_64" "package-format: rpm" "package-management: dnf" "mountpoint: /: $root" \
        "mountpoint: /boot: /dev/sda1" "mountpoint: /home: btrfsvol:/dev/sda2/home"
      ;;
    *) lib_fixture_expected "$1" ;;
  esac
}
