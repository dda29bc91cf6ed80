#ifndef IMGCUSTOMIZE_CLINUX_SHIM_H
#define IMGCUSTOMIZE_CLINUX_SHIM_H
/* Linux calls the Swift Glibc module leaves out: extended attributes (SELinux labels in a tree). */
#include <sys/xattr.h>
#endif
