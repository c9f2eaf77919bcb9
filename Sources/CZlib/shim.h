// zlib (Debian: zlib1g-dev; pkg-config zlib), for HDF5Kit's chunk filters: the deflate that
// libhdf5's own gzip filter calls, run on the caller's threads instead of under the HDF5 lock.
#pragma once
#include <zlib.h>
