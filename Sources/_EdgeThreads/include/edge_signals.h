#ifndef EDGE_SIGNALS_H
#define EDGE_SIGNALS_H

// SIGINT / SIGTERM as a flag. The handler only stores the signal number in a volatile sig_atomic_t (the
// one thing a handler may portably do); long loops poll it between steps and stop cleanly themselves.

/// Installs the handler for SIGINT and SIGTERM. Each handler fires once (SA_RESETHAND), so a second
/// Ctrl-C falls back to the default action and ends a process that is slow to notice. Returns 0, or -1
/// with errno set.
int edge_stop_signals_install(void);

/// The first SIGINT or SIGTERM received since install (or reset), or 0.
int edge_stop_signal(void);

/// Forgets a received signal (for tests).
void edge_stop_signal_reset(void);

#endif
