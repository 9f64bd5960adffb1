/* Small C helpers of fastsock's compiled implementation, declared for Cython
   in sockapi.pxd.  Only what cannot be written as a Cython declaration lives
   here. */
#ifndef FASTSOCK_COMPAT_H
#define FASTSOCK_COMPAT_H

#include <Python.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/un.h>

#define fastsock_would_block(err) ((err) == EAGAIN || (err) == EWOULDBLOCK)

/* offsetof(struct sockaddr_un, sun_path): the size of an unnamed address */
#define FASTSOCK_SUN_PATH_OFFSET offsetof(struct sockaddr_un, sun_path)

#ifndef UIO_MAXIOV
#define UIO_MAXIOV 1024
#endif

/* Room for one small control message, aligned as struct cmsghdr must be
   (cmsg(3)): a plain char array on the stack need not be. */
typedef union {
    char buf[64];
    struct cmsghdr align;
} fastsock_cmsg_buffer;

/* Room for the control data of a message with a few descriptors (60 of
   them, or credentials), aligned the same way; more is allocated. */
typedef union {
    char buf[256];
    struct cmsghdr align;
} fastsock_control_buffer;

/* sendfile() has no MSG_NOSIGNAL: block SIGPIPE in this thread for the call,
   and take back a SIGPIPE it raised (one not pending before). */
static ssize_t fastsock_sendfile_nosignal(int out_fd, int in_fd, off_t *offset, size_t count)
{
    sigset_t pipe_only, old_mask, pending;
    struct timespec no_wait = {0, 0};
    int was_pending, saved;
    ssize_t n;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask);
    n = sendfile(out_fd, in_fd, offset, count);
    if (n < 0 && errno == EPIPE && !was_pending) {
        saved = errno;
        while (sigtimedwait(&pipe_only, NULL, &no_wait) < 0 && errno == EINTR) {}
        errno = saved;
    }
    saved = errno;
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    errno = saved;
    return n;
}

/* Waking a thread blocked in a call on a socket that another thread closes:
   the closing thread sends FASTSOCK_WAKE_SIGNAL to it, so the blocked
   syscall returns EINTR and the call sees the socket closed.  A handler that
   does nothing, installed without SA_RESTART, is all that takes: SIGURG is
   ignored by default (so a stray one harms nothing) and rarely used. */
#define FASTSOCK_WAKE_SIGNAL SIGURG

static void fastsock_wake_handler(int sig) { (void)sig; }

/* Install the wake handler unless the application has a handler of its own
   for the signal (any handler interrupts the syscall just as well); 0 on
   success, -1 with errno set. */
static int fastsock_install_wake_handler(void)
{
    struct sigaction current, wake;
    if (sigaction(FASTSOCK_WAKE_SIGNAL, NULL, &current) < 0)
        return -1;
    if (current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN)
        return 0;
    memset(&wake, 0, sizeof(wake));
    wake.sa_handler = fastsock_wake_handler;
    sigemptyset(&wake.sa_mask);
    wake.sa_flags = 0; /* no SA_RESTART: the blocked syscall must return */
    return sigaction(FASTSOCK_WAKE_SIGNAL, &wake, NULL);
}

/* Socket state read outside its object's critical section (fastsock's
   thread-safety model, docs/architecture.md): a relaxed atomic load or store
   is a plain move on the machines we build for, so the GIL build pays
   nothing, and on a free-threaded build no reader sees a torn value or
   races a writer (ThreadSanitizer checks it). */
#define fastsock_load_int(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define fastsock_store_int(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define fastsock_exchange_int(p, v) __atomic_exchange_n((p), (v), __ATOMIC_ACQ_REL)

static inline double fastsock_load_double(const double *p)
{
    double value;
    __atomic_load(p, &value, __ATOMIC_RELAXED);
    return value;
}

static inline void fastsock_store_double(double *p, double value)
{
    __atomic_store(p, &value, __ATOMIC_RELAXED);
}

/* Whether other Python threads exist, which may be waiting for the GIL: a
   blocking socket's send then skips its try with the GIL held.  On loopback
   a send runs the receiver's TCP input, microseconds during which every
   other thread would wait (a thread-per-connection server's CPU per request
   doubled); with no other thread, keeping the GIL is cheaper.  Never on a
   free-threaded build: there is no GIL to hand over. */
static inline int fastsock_gil_shared(void)
{
#ifdef Py_GIL_DISABLED
    return 0;
#else
    PyThreadState *first = PyInterpreterState_ThreadHead(PyInterpreterState_Get());
    return first != NULL && PyThreadState_Next(first) != NULL;
#endif
}

/* 1 on a free-threaded CPython (PEP 703), where the GIL protects nothing */
#ifdef Py_GIL_DISABLED
#define FASTSOCK_FREE_THREADED 1
#else
#define FASTSOCK_FREE_THREADED 0
#endif

#endif
