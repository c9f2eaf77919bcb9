// zlib (Debian: zlib1g-dev; pkg-config zlib), for the tests that inflate HDF5Kit's stored chunks
// as libhdf5's gzip filter does on read (HDF5Kit itself deflates with libdeflate: CDeflate).
#pragma once
#include <zlib.h>
