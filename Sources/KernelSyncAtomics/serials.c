// Words that hand out numbers unique in a run, changed only with the atomics of
// KernelSyncAtomics.h (C storage: a Swift global changed through a pointer is a formal
// access to the compiler and to ThreadSanitizer, whatever the atomics inside).
#include "KernelSyncAtomics.h"

static uint32_t heap_tags_issued;

uint32_t *ks_heap_tag_word(void) { return &heap_tags_issued; }
