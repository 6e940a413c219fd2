// ArchPerCPU is header only (include/ArchPerCPU.h); a C target needs one source file.
#include "ArchPerCPU.h"
