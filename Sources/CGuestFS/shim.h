#ifndef IMGCUSTOMIZE_CGUESTFS_SHIM_H
#define IMGCUSTOMIZE_CGUESTFS_SHIM_H
#include <guestfs.h>
#include <stdint.h>

/* The optional-argument bitmasks are UINT64_C(...) macros, which Swift does not import. */
static const uint64_t imgc_add_drive_readonly = GUESTFS_ADD_DRIVE_OPTS_READONLY_BITMASK;
static const uint64_t imgc_add_drive_format = GUESTFS_ADD_DRIVE_OPTS_FORMAT_BITMASK;
static const uint64_t imgc_add_drive_cachemode = GUESTFS_ADD_DRIVE_OPTS_CACHEMODE_BITMASK;
static const uint64_t imgc_add_drive_discard = GUESTFS_ADD_DRIVE_OPTS_DISCARD_BITMASK;
static const uint64_t imgc_glob_expand_directoryslash = GUESTFS_GLOB_EXPAND_OPTS_DIRECTORYSLASH_BITMASK;
static const uint64_t imgc_cryptsetup_open_readonly = GUESTFS_CRYPTSETUP_OPEN_READONLY_BITMASK;

#endif
