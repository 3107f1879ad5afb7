/*
 * kestrel_mps_torch_ext.h -- the header name of kestrel-mps-torch-ext 0.1.x.
 *
 * Source written against the published package's header includes this name;
 * it gets the same declarations, with the same layouts and function types,
 * from the project's one header, which also declares the extension.
 */
#ifndef KESTREL_MPS_TORCH_EXT_H_
#define KESTREL_MPS_TORCH_EXT_H_

#include "kestrel_mps_api.h"

#endif /* KESTREL_MPS_TORCH_EXT_H_ */
