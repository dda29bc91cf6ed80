# Shared by Fixtures/build-debian and Fixtures/check-debian (sourced, not run): the two Debian 12
# guests, their layout facts, the NoCloud seed and the TCG boot both scripts use.

debian_names=(debian12-bios debian12-uefi)

debian_known() {
  case $1 in
    debian12-bios | debian12-uefi) return 0 ;;
    *) echo "debian fixtures: unknown image '$1' (known: ${debian_names[*]})" >&2; return 1 ;;
  esac
}

debian_firmware() {
  case $1 in
    debian12-bios) echo bios ;;
    debian12-uefi) echo uefi ;;
  esac
}

debian_hostname() {
  case $1 in
    debian12-bios) echo deb12-bios ;;
    debian12-uefi) echo deb12-uefi ;;
  esac
}

# The installer names the volume group after the host; neither "rhel" nor "VolGroup" (the RHEL fixtures).
debian_vg=deb12-bios-vg

# Fixed, so that tests can name them; the layout file next to each image repeats them.
debian_uuid() {
  case $1 in
    bios-boot) echo 4f0c9a43-6f1e-4a8e-9a52-2c0f3d6b7e11 ;;
    bios-root) echo 9b8e3c1a-7d2f-4b6e-8c4a-1e5f0a9d3c22 ;;
    bios-swap) echo c3d5e7f9-1a2b-4c3d-9e8f-5a6b7c8d9e33 ;;
    uefi-root) echo 2e7a4c9f-3b1d-4f6a-b8e2-7c9d1f3a5b44 ;;
    uefi-esp) echo 5A1E-0B2C ;;
  esac
}

# The filesystem libguestfs names as the guest's root.
debian_root() {
  case $1 in
    debian12-bios) echo "/dev/$debian_vg/root" ;;
    debian12-uefi) echo /dev/sda2 ;;
  esac
}

# What inspection must report (fixture_expected's form, lib.sh), given the point release ("12.15"), which
# libguestfs also reports as Debian's product name (from /etc/debian_version).
debian_expected() {
  local name=$1 release=$2 root
  root=$(debian_root "$name")
  printf '%s\n' "roots: $root" "type: linux" "distro: debian" "major: ${release%%.*}" "minor: ${release#*.}" \
    "osinfo: debian12" "product: $release" "hostname: $(debian_hostname "$name")" \
    "arch: x86_64" "package-format: deb" "package-management: apt" "mountpoint: /: $root"
  case $name in
    debian12-bios) echo "mountpoint: /boot: /dev/sda1" ;;
    debian12-uefi) echo "mountpoint: /boot/efi: /dev/sda1" ;;
  esac
}

# guestfish commands mounting the guest's filesystems at their mountpoints.
debian_mount_commands() {
  case $1 in
    debian12-bios) printf '%s\n' "mount /dev/$debian_vg/root /" "mount /dev/sda1 /boot" ;;
    debian12-uefi) printf '%s\n' "mount /dev/sda2 /" "mount /dev/sda1 /boot/efi" ;;
  esac
}

# The default entry of a grub.cfg (stdin) as a one-shot entry with the serial console arguments the BIOS
# image's config deliberately lacks, so that a boot can be watched on the serial port.
debian_console_once_entry() {
  awk '
    /^menuentry / && !seen {
      inside = 1; seen = 1
      sub("^menuentry \047[^\047]*\047", "menuentry \047Debian GNU/Linux, serial console once\047")
      sub("[$]menuentry_id_option \047[^\047]*\047", "--id console-once")
    }
    inside && /^[[:space:]]*linux[[:space:]]/ { $0 = $0 " console=tty0 console=ttyS0,115200" }
    inside { print }
    inside && /^}/ { exit }
  '
}

# guestfish commands installing that entry as /boot/grub/custom.cfg (which Debian's grub.cfg sources) and
# selecting it for the next boot only, through GRUB's own next_entry (00_header clears it on boot).
# $1: a host directory for the copies.
debian_console_once_commands() {
  local tmp=$1
  cat <<EOF
download /boot/grub/grub.cfg "$tmp/grub.cfg"
!bash -c '. "\$0" && debian_console_once_entry' "${BASH_SOURCE[0]}" <"$tmp/grub.cfg" >"$tmp/custom.cfg"
!grep -q 'console=ttyS0' "$tmp/custom.cfg" || { echo "no linux line in grub.cfg's first entry" >&2; exit 1; }
upload "$tmp/custom.cfg" /boot/grub/custom.cfg
sh "grub-editenv /boot/grub/grubenv set next_entry=console-once"
EOF
}

# Writes a NoCloud seed ISO (volume id cidata): meta-data with the instance id and hostname, user-data that
# installs $4 (an SSH public key) for the default user and powers the guest off when cloud-init is done.
debian_seed() {
  local name=$1 iid=$2 iso=$3 pubkey=$4 dir
  dir=$(mktemp -d)
  printf 'instance-id: %s\nlocal-hostname: %s\n' "$iid" "$(debian_hostname "$name")" >"$dir/meta-data"
  cat >"$dir/user-data" <<EOF
#cloud-config
ssh_authorized_keys:
  - $pubkey
power_state:
  mode: poweroff
  delay: now
  message: imgcustomize fixture boot done, powering off
  timeout: 120
EOF
  xorriso -as genisoimage -quiet -output "$iso" -volid cidata -joliet -rock "$dir/meta-data" "$dir/user-data" 2>/dev/null
  local rc=$?
  rm -rf "$dir"
  return $rc
}

debian_ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.fd
debian_ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.fd

# The qemu command line booting image $2 (format $3) under TCG with seed ISO $4, serial console to $5,
# a fresh copy of the UEFI variables at $6 for the UEFI image, the guest agent's socket at $7. Networking is qemu's user mode with
# restrict=on: the guest gets a DHCP lease from qemu and reaches nothing else.
debian_qemu_command() {
  local name=$1 disk=$2 format=$3 seed=$4 serial=$5 vars=$6 agent=$7
  printf '%s\n' qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -no-reboot -display none -monitor none \
    -serial "file:$serial"
  case $(debian_firmware "$name") in
    bios) printf '%s\n' -machine pc ;;
    uefi)
      printf '%s\n' -machine q35 \
        -drive "if=pflash,format=raw,unit=0,readonly=on,file=$debian_ovmf_code" \
        -drive "if=pflash,format=raw,unit=1,file=$vars"
      ;;
  esac
  printf '%s\n' -drive "file=$disk,format=$format,if=virtio" \
    -drive "file=$seed,format=raw,if=virtio,readonly=on" \
    -nic user,model=virtio-net-pci,restrict=on \
    -device virtio-rng-pci \
    -device virtio-serial -chardev "socket,id=qga0,path=$agent,server=on,wait=off" \
    -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0
}

# cloud-init's last line on the console, the proof that the guest booted through to the final stage.
debian_final_pattern='Cloud-init v\. [0-9][^ ]* finished at'
