// The last error per thread, as errno and dlerror() keep theirs: a C API whose calls may run on many threads
// at once cannot keep one message per library. Written in C because Swift has no thread-local storage.
#include <string.h>
#include "edgeddim.h"
#include "edgeddim_error_store.h"

static _Thread_local char last_error[EDGEDDIM_ERROR_CAPACITY];

void edgeddim_store_error(const char *message) {
    if (message == NULL) {
        last_error[0] = 0;
        return;
    }
    size_t n = strlen(message);
    if (n > EDGEDDIM_ERROR_CAPACITY - 1) {
        n = EDGEDDIM_ERROR_CAPACITY - 1;
        // Back up over UTF-8 continuation bytes so the cut does not split a character.
        while (n > 0 && ((unsigned char)message[n] & 0xC0) == 0x80) n--;
    }
    memcpy(last_error, message, n);
    last_error[n] = 0;
}

const char *edgeddim_last_error(void) { return last_error; }
