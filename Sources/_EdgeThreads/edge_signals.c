// Lives beside the OpenMP loop because _EdgeThreads is the C target _EdgeCore already depends on: a
// sig_atomic_t flag has no Swift 6.0 spelling without global mutable state or the Synchronization module.
#include "edge_signals.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t received = 0;

static void on_stop_signal(int signal) {
    // Keep the first signal: it decides the exit status (130 or 143).
    if (received == 0) received = signal;
}

int edge_stop_signals_install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    // SA_RESTART: interrupted reads and writes (progress lines, output files) resume instead of failing.
    action.sa_flags = SA_RESTART | SA_RESETHAND;
    if (sigaction(SIGINT, &action, 0) != 0) return -1;
    if (sigaction(SIGTERM, &action, 0) != 0) return -1;
    return 0;
}

int edge_stop_signal(void) { return received; }

void edge_stop_signal_reset(void) { received = 0; }
