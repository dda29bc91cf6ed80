#ifndef IMGCUSTOMIZE_CGUESTFS_SHIM_H
#define IMGCUSTOMIZE_CGUESTFS_SHIM_H
#include <guestfs.h>
#endif
