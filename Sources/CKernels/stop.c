// The graceful-stop door: a signal handler that only records which signal came (async-signal-safe), and the
// policy's one exception, a second signal, which ends the process at once as that signal would have.
#include "CKernels.h"
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t received = 0;
static struct timespec received_at;

static void on_stop_signal(int sig) {
    if (received != 0) {
        // Second signal while stopping: the default action, now (the job ends promptly, without a checkpoint).
        static const char line[] = "deepcluster: second signal while stopping; ending now\n";
        (void)!write(2, line, sizeof line - 1);
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &received_at);  // async-signal-safe (POSIX)
    received = sig;
    static const char first[] = "deepcluster: stop signal received; stopping after the current training step (a second signal ends the process now)\n";
    (void)!write(2, first, sizeof first - 1);
}

int CKernels_stop_install(const int *signals, int count) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (int i = 0; i < count; i++) {
        if (sigaction(signals[i], &action, NULL) != 0) return -1;
    }
    return 0;
}

int CKernels_stop_received(void) { return received; }

void CKernels_stop_release(const int *signals, int count) {
    for (int i = 0; i < count; i++) signal(signals[i], SIG_DFL);
    if (received != 0) raise(received);
}

double CKernels_stop_seconds_since(void) {
    if (received == 0) return 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - received_at.tv_sec) + 1e-9 * (double)(now.tv_nsec - received_at.tv_nsec);
}
