#ifndef IMGCUSTOMIZE_CAUGEAS_SHIM_H
#define IMGCUSTOMIZE_CAUGEAS_SHIM_H
#include <augeas.h>
#endif
