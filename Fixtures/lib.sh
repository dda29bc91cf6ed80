# Shared by Fixtures/build-images and Fixtures/check-images (sourced, not run): the list of
# guest images, their layout facts, and what libguestfs inspection must say about each.

fixture_names=(rhel7 rhel6 rhel7-single)

fixture_file() {
  case $1 in
    rhel7) echo rhel7.qcow2 ;;
    rhel6) echo rhel6.qcow2 ;;
    rhel7-single) echo rhel7-single.raw ;;
    *) echo "fixtures: unknown image '$1' (known: ${fixture_names[*]})" >&2; return 1 ;;
  esac
}

fixture_format() {
  case $1 in
    rhel7-single) echo raw ;;
    *) echo qcow2 ;;
  esac
}

# The device libguestfs names as the guest's root filesystem.
fixture_root() {
  case $1 in
    rhel7) echo /dev/rhel/root ;;
    rhel6) echo /dev/VolGroup/lv_root ;;
    rhel7-single) echo /dev/sda1 ;;
  esac
}

# What inspection must report, one "key: value" line each, in the order
# fixture_inspection_commands asks for them.
fixture_expected() {
  local root
  root=$(fixture_root "$1")
  case $1 in
    rhel7 | rhel7-single)
      printf '%s\n' "roots: $root" "type: linux" "distro: rhel" "major: 7" "minor: 9" "osinfo: rhel7.9" \
        "product: Red Hat Enterprise Linux Server 7.9 (Maipo)" "hostname: rhel7-build.example.com" \
        "arch: x86_64" "package-format: rpm" "package-management: yum" "mountpoint: /: $root"
      [ "$1" = rhel7 ] && echo "mountpoint: /boot: /dev/sda1"
      ;;
    rhel6)
      printf '%s\n' "roots: $root" "type: linux" "distro: rhel" "major: 6" "minor: 10" "osinfo: rhel6.10" \
        "product: Red Hat Enterprise Linux Server release 6.10 (Santiago)" "hostname: rhel6-build.example.com" \
        "arch: x86_64" "package-format: rpm" "package-management: yum" "mountpoint: /: $root" \
        "mountpoint: /boot: /dev/sda1"
      ;;
  esac
  return 0
}

# guestfish commands that print the inspection facts, each value preceded by an "@key" marker line
# (guestfish prints bare values). They run on a launched handle with nothing mounted. $2, when given,
# is the root device (for images not in fixture_names: Fixtures/debian.sh).
fixture_inspection_commands() {
  local root k
  root=${2:-$(fixture_root "$1")}
  echo "echo @roots"
  echo "inspect-os"
  for k in type distro major-version minor-version osinfo product-name hostname arch \
    package-format package-management mountpoints; do
    echo "echo @$k"
    echo "inspect-get-$k $root"
  done
}

# Turns the marker-and-value output of fixture_inspection_commands into fixture_expected's form.
fixture_report() {
  # Mountpoints come from a hash table: sorted, so that the order is stable.
  awk '
    /^@/ { key = substr($0, 2); sub(/-version$/, "", key); sub(/-name$/, "", key); next }
    key == "mountpoints" && NF > 0 { mounts[++n] = $0; next }
    key != "" && NF > 0 { print key ": " $0 }
    END { cmd = "LC_ALL=C sort"; for (i = 1; i <= n; i++) print "mountpoint: " mounts[i] | cmd; close(cmd) }
  '
}
