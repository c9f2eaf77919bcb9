// libarchive: streaming reads of .tar, .tar.gz, .tar.xz and .zip datasets.
#pragma once
#include <archive.h>
#include <archive_entry.h>
