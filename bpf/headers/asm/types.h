/* Arch shim: lets the uapi headers in /usr/include/linux (linux-libc-dev)
 * resolve <asm/...> without the multiarch include directory, which differs
 * per host arch. The BPF target is arch-neutral, so asm-generic is right. */
#include <asm-generic/types.h>
