#ifndef IMGCUSTOMIZE_CAUGEAS_SHIM_H
#define IMGCUSTOMIZE_CAUGEAS_SHIM_H
/* augeas.h includes <libxml/tree.h> only for the opaque xmlNode of aug_to_xml, which imgcustomize does not call.
 * libxml2 drags in the system ICU headers, whose UErrorCode clashes with the ICU copy inside Foundation
 * ("'UErrorCode' has different definitions in different modules"), so keep libxml2 out of this module. */
#ifndef __XML_TREE_H__
#define __XML_TREE_H__
typedef struct _xmlNode xmlNode;
#endif
#include <augeas.h>
#endif
