/* Not part of the C API (tools/install.sh installs edgeddim.h alone): where the Swift implementation records
 * the calling thread's last error for edgeddim_last_error(). */
#ifndef EDGEDDIM_ERROR_STORE_H
#define EDGEDDIM_ERROR_STORE_H

/* Copies `message` (NUL-terminated UTF-8; NULL clears) into the calling thread's buffer, truncated to
 * EDGEDDIM_ERROR_CAPACITY - 1 bytes at a UTF-8 character boundary. */
__attribute__((visibility("hidden"))) void edgeddim_store_error(const char *message);

#define EDGEDDIM_ERROR_CAPACITY 1024

#endif
