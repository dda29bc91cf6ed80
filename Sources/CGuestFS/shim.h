#ifndef IMGCUSTOMIZE_CGUESTFS_SHIM_H
#define IMGCUSTOMIZE_CGUESTFS_SHIM_H
#include <guestfs.h>
#include <stdint.h>

/* The optional-argument bitmasks are UINT64_C(...) macros, which Swift does not import. */
static const uint64_t imgc_add_drive_readonly = GUESTFS_ADD_DRIVE_OPTS_READONLY_BITMASK;
static const uint64_t imgc_add_drive_format = GUESTFS_ADD_DRIVE_OPTS_FORMAT_BITMASK;
static const uint64_t imgc_add_drive_name = GUESTFS_ADD_DRIVE_OPTS_NAME_BITMASK;
static const uint64_t imgc_add_drive_cachemode = GUESTFS_ADD_DRIVE_OPTS_CACHEMODE_BITMASK;
static const uint64_t imgc_add_drive_discard = GUESTFS_ADD_DRIVE_OPTS_DISCARD_BITMASK;
static const uint64_t imgc_glob_expand_directoryslash = GUESTFS_GLOB_EXPAND_OPTS_DIRECTORYSLASH_BITMASK;
static const uint64_t imgc_mkswap_label = GUESTFS_MKSWAP_OPTS_LABEL_BITMASK;
static const uint64_t imgc_mkswap_uuid = GUESTFS_MKSWAP_OPTS_UUID_BITMASK;

/* Flags of guestfs_aug_init: Augeas runs inside the appliance, so they are Augeas's own values (augeas.h),
   which libguestfs passes through without defining them. */
static const int imgc_aug_no_load = 1 << 5;
static const int imgc_aug_no_modl_autoload = 1 << 6;

#endif
