#ifndef IMGCUSTOMIZE_CCRYPT_SHIM_H
#define IMGCUSTOMIZE_CCRYPT_SHIM_H
/* libxcrypt: crypt_rn is the reentrant crypt(3) that reports failure as NULL instead of a "*" string. */
#include <crypt.h>
#endif
