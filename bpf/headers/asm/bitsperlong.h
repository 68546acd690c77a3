/* Arch shim, see asm/types.h. */
#include <asm-generic/bitsperlong.h>
