#ifndef IMGCUSTOMIZE_CLINUX_SHIM_H
#define IMGCUSTOMIZE_CLINUX_SHIM_H
/* Linux calls the Swift Glibc module leaves out: extended attributes (SELinux labels in a tree) and
   sync_file_range (declared by glibc only under _GNU_SOURCE, which the Glibc module is built without). */
#include <stdint.h>
#include <sys/xattr.h>

int sync_file_range(int fd, int64_t offset, int64_t nbytes, unsigned int flags);
/* Start writeback of the range's dirty pages without waiting for it. */
#define IMGCUSTOMIZE_SYNC_FILE_RANGE_WRITE 2
#endif
