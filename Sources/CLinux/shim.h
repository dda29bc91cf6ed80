#ifndef IMGCUSTOMIZE_CLINUX_SHIM_H
#define IMGCUSTOMIZE_CLINUX_SHIM_H
/* Linux calls the Swift Glibc module leaves out: extended attributes (SELinux labels in a tree), sync_file_range,
   pipe2 and posix_spawn_file_actions_addclosefrom_np
   and the open-file-description locks (declared by glibc only under _GNU_SOURCE, which the Glibc module is built
   without), and openat2 (no glibc wrapper at all: a raw syscall, which Swift cannot make since syscall() is
   variadic). */
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>

int sync_file_range(int fd, int64_t offset, int64_t nbytes, unsigned int flags);

/* The process runner's: pipes made close-on-exec at once, and a spawned program's descriptors from 3 up closed (glibc
   2.34), both declared only under _GNU_SOURCE. */
#include <spawn.h>
int pipe2(int fds[2], int flags);
int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
/* Start writeback of the range's dirty pages without waiting for it. */
#define IMGCUSTOMIZE_SYNC_FILE_RANGE_WRITE 2

/* openat2(2); -1 with errno ENOSYS on a kernel before 5.6 (or where seccomp filters it out). */
static inline int imgcustomize_openat2(int directory, const char *path, uint64_t flags, uint64_t mode,
                                       uint64_t resolve) {
    struct open_how how = { .flags = flags, .mode = mode, .resolve = resolve };
    return (int)syscall(SYS_openat2, directory, path, &how, sizeof how);
}
/* The RESOLVE_* macros, which Swift imports only when they are plain literals. */
static const uint64_t IMGCUSTOMIZE_RESOLVE_BENEATH = RESOLVE_BENEATH;
static const uint64_t IMGCUSTOMIZE_RESOLVE_NO_SYMLINKS = RESOLVE_NO_SYMLINKS;
static const uint64_t IMGCUSTOMIZE_RESOLVE_NO_MAGICLINKS = RESOLVE_NO_MAGICLINKS;
/* AT_EMPTY_PATH (fcntl.h declares it only under _GNU_SOURCE): fchownat on the descriptor itself. */
static const int IMGCUSTOMIZE_AT_EMPTY_PATH = 0x1000;

/* Linux's F_OFD_GETLK and F_OFD_SETLK: byte-range locks owned by the open file description, the kind qemu takes on
   its images (block/file-posix.c), so they are seen by and conflict with qemu's. */
#define IMGCUSTOMIZE_F_OFD_GETLK 36
#define IMGCUSTOMIZE_F_OFD_SETLK 37

/* A lock of `type` on one byte. */
static inline struct flock imgcustomize_one_byte(short type, int64_t byte) {
    struct flock lock;
    memset(&lock, 0, sizeof lock);
    lock.l_type = type;
    lock.l_whence = SEEK_SET;
    lock.l_start = byte;
    lock.l_len = 1;
    return lock;
}

/* Takes (type F_RDLCK or F_WRLCK) or releases (F_UNLCK) an OFD lock on one byte; 0, or -1 with errno set. */
static inline int imgcustomize_ofd_lock(int fd, short type, int64_t byte) {
    struct flock lock = imgcustomize_one_byte(type, byte);
    return fcntl(fd, IMGCUSTOMIZE_F_OFD_SETLK, &lock);
}

/* Whether another open file description holds a lock on one byte that conflicts with `type`: 1 if so, 0 if not,
   -1 with errno set when the test itself failed. */
static inline int imgcustomize_ofd_conflict(int fd, short type, int64_t byte) {
    struct flock lock = imgcustomize_one_byte(type, byte);
    if (fcntl(fd, IMGCUSTOMIZE_F_OFD_GETLK, &lock) != 0) return -1;
    return lock.l_type != F_UNLCK;
}
#endif
