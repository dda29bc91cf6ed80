#ifndef IMGCUSTOMIZE_CCOMPRESS_SHIM_H
#define IMGCUSTOMIZE_CCOMPRESS_SHIM_H
#include <libdeflate.h>
#include <zstd.h>
#include <zlib.h>
#endif
