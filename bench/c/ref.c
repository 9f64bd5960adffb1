/*
 * The C reference for the fastsock benchmarks, and the peer processes the
 * Python benchmarks talk to.
 *
 *   ref peer echo tcp HOST PORT [cpu=N]     echo everything back until EOF
 *   ref peer echo unix PATH [cpu=N]
 *   ref peer source HOST PORT WSIZE [cpu=N] write WSIZE-byte buffers until the
 *                                           reader goes away
 *   ref peer frames tcp HOST PORT SIZE [cpu=N]
 *   ref peer frames unix PATH SIZE [cpu=N]  write a stream of SIZE-byte messages,
 *                                           each after a 4-byte big-endian
 *                                           length, until the reader goes away
 *   ref peer lines unix PATH SIZE [cpu=N]   write a stream of SIZE-byte lines (the last
 *                                           byte a newline) until the reader goes away
 *   ref peer sink tcp HOST PORT [cpu=N]     read and discard until EOF
 *   ref peer sink unix PATH [cpu=N]
 *   ref peer load tcp HOST PORT CONNS SIZE [cpu=N]
 *                                           the echo load generator: open CONNS
 *                                           connections, print "ready"; then for
 *                                           each number N read on stdin, make N
 *                                           SIZE-byte request/response exchanges
 *                                           spread over the connections, one in
 *                                           flight on each (epoll), check every
 *                                           response and print "done"; exit at EOF
 *   ref run WORKLOAD key=value...           time WORKLOAD, print one JSON line
 *
 * Workloads (the same loops as the Python benchmarks):
 *   percall        1-byte send + recv on an AF_UNIX socketpair     (msgs)
 *   pingpong-tcp   size-byte request/response, echo peer forked    (msgs)
 *   pingpong-unix
 *   bulk           recv() of size-byte chunks into one buffer from a
 *                  forked source peer                              (bytes)
 *   bulk-exact     the same, each size-byte chunk filled completely
 *                  before the next (recv until full)                (bytes)
 *   frames-tcp     batch length-prefixed size-byte messages from a
 *   frames-unix    forked frames peer: recv into one buffer, split
 *                  the frames in place                             (msgs)
 *   lines-unix     batch size-byte lines from a forked lines peer:
 *                  recv into one buffer, find each newline with
 *                  memchr where it lies                            (lines)
 *   send-hdr       sendmsg of a hsize-byte header + size-byte body
 *                  to a forked sink peer over TCP                  (msgs)
 *   connect        socket + connect + accept + close + close       (conns)
 *   udp-drain      fill a receiver's queue, time draining it with
 *                  non-blocking recvfrom until EAGAIN               (msgs)
 *   udp-send       sendto loop to a receiver nobody reads           (msgs)
 *   udp-drain-mmsg udp-drain with recvmmsg of vlen 2048-byte slots  (msgs)
 *   udp-send-mmsg  udp-send with sendmmsg of vlen datagrams a call  (msgs)
 *   udp-send-gso   udp-send with one sendmsg of vlen size-byte
 *                  segments a call (UDP_SEGMENT)                   (msgs)
 *   seqpacket-drain-mmsg  fill an AF_UNIX SOCK_SEQPACKET socketpair's
 *                  queue with batch size-byte records, time draining
 *                  it with recvmmsg of vlen slots until EAGAIN      (msgs)
 *
 * Keys: batch (units per round; bytes for bulk), rounds, warmup, size,
 * rcvbuf (udp-drain), wsize (bulk source; the frames and lines receive buffer),
 * hsize (send-hdr), vlen (datagrams per call of the udp-*-mmsg and
 * udp-send-gso workloads), cpu, peer_cpu.
 *
 * Each round is timed with CLOCK_MONOTONIC; the result is
 * units_per_round / median round time, the same definition the Python side
 * uses with pytest-benchmark's median.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 100000
#define MAX_VLEN 1024
#define SLOT_SIZE 2048

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

static void die(const char *what)
{
    fprintf(stderr, "ref: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void fail(const char *what)
{
    fprintf(stderr, "ref: %s\n", what);
    exit(2);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void pin(long cpu)
{
    cpu_set_t set;
    if (cpu < 0)
        return;
    CPU_ZERO(&set);
    CPU_SET((int)cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) < 0)
        die("sched_setaffinity");
}

/* -- parameters ------------------------------------------------------------ */

struct params {
    long batch, rounds, warmup, size, rcvbuf, wsize, hsize, vlen, cpu, peer_cpu;
};

static void parse_params(struct params *p, int argc, char **argv)
{
    p->batch = 1000;
    p->rounds = 10;
    p->warmup = 1;
    p->size = 64;
    p->rcvbuf = 8 << 20;
    p->wsize = 256 << 10;
    p->hsize = 16;
    p->vlen = 64;
    p->cpu = -1;
    p->peer_cpu = -1;
    for (int i = 0; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        long value;
        if (!eq)
            fail("parameters are key=value");
        value = strtol(eq + 1, NULL, 10);
        *eq = '\0';
        if (!strcmp(argv[i], "batch")) p->batch = value;
        else if (!strcmp(argv[i], "rounds")) p->rounds = value;
        else if (!strcmp(argv[i], "warmup")) p->warmup = value;
        else if (!strcmp(argv[i], "size")) p->size = value;
        else if (!strcmp(argv[i], "rcvbuf")) p->rcvbuf = value;
        else if (!strcmp(argv[i], "wsize")) p->wsize = value;
        else if (!strcmp(argv[i], "hsize")) p->hsize = value;
        else if (!strcmp(argv[i], "vlen")) p->vlen = value;
        else if (!strcmp(argv[i], "cpu")) p->cpu = value;
        else if (!strcmp(argv[i], "peer_cpu")) p->peer_cpu = value;
        else fail("unknown parameter");
        *eq = '=';
    }
    if (p->rounds < 1 || p->rounds > MAX_ROUNDS || p->batch < 0 || p->warmup < 0
            || p->size < 1 || p->wsize < 1 || p->hsize < 0
            || p->vlen < 1 || p->vlen > MAX_VLEN)
        fail("parameter out of range");
}

/* -- sockets --------------------------------------------------------------- */

static void send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("send");
        }
        buf += n;
        len -= (size_t)n;
    }
}

static void recv_exact(int fd, char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n == 0)
            fail("recv: unexpected EOF");
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("recv");
        }
        buf += n;
        len -= (size_t)n;
    }
}

static void set_nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        die("setsockopt TCP_NODELAY");
}

static void loopback(struct sockaddr_in *sin, int port)
{
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((unsigned short)port);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static int listen_tcp(struct sockaddr_in *bound)
{
    socklen_t len = sizeof(*bound);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    loopback(bound, 0);
    if (bind(fd, (struct sockaddr *)bound, sizeof(*bound)) < 0)
        die("bind");
    if (listen(fd, 128) < 0)
        die("listen");
    if (getsockname(fd, (struct sockaddr *)bound, &len) < 0)
        die("getsockname");
    return fd;
}

static void unix_address(struct sockaddr_un *sun, const char *path)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun->sun_path))
        fail("AF_UNIX path too long");
    strcpy(sun->sun_path, path);
}

static int listen_unix(const char *path)
{
    struct sockaddr_un sun;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    unix_address(&sun, path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
        die("bind");
    if (listen(fd, 128) < 0)
        die("listen");
    return fd;
}

static int connect_tcp(const char *host, int port)
{
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    loopback(&sin, port);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        fail("not an IPv4 address");
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
        die("connect");
    set_nodelay(fd);
    return fd;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sun;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    unix_address(&sun, path);
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
        die("connect");
    return fd;
}

static int accept_one(int listener)
{
    int fd;
    do {
        fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        die("accept");
    return fd;
}

/* -- peers ----------------------------------------------------------------- */

static int peer_echo(int fd)
{
    static char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == ECONNRESET ? 0 : 1;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t m = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (m < 0) {
                if (errno == EINTR)
                    continue;
                return 0;  /* the reader went away */
            }
            off += m;
        }
    }
}

static int peer_source(int fd, long wsize)
{
    char *buf = malloc((size_t)wsize);
    if (!buf)
        fail("out of memory");
    memset(buf, 'x', (size_t)wsize);
    for (;;) {
        ssize_t n = send(fd, buf, (size_t)wsize, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            free(buf);
            /* EPIPE / ECONNRESET: the reader closed, which is how a run ends */
            return (errno == EPIPE || errno == ECONNRESET) ? 0 : 1;
        }
    }
}

/* The pre-framed stream: as many whole frames as fit in about 256 KiB,
 * written again and again, partial writes continued where they stopped so
 * the reader always sees whole frames in sequence. */
static int peer_frames(int fd, long size)
{
    long frame = 4 + size, count = (256L << 10) / frame, len, off = 0;
    char *buf;
    if (count < 1)
        count = 1;
    len = count * frame;
    buf = malloc((size_t)len);
    if (!buf)
        fail("out of memory");
    for (long i = 0; i < count; i++) {
        unsigned char *f = (unsigned char *)buf + i * frame;
        f[0] = (unsigned char)(size >> 24);
        f[1] = (unsigned char)(size >> 16);
        f[2] = (unsigned char)(size >> 8);
        f[3] = (unsigned char)size;
        memset(f + 4, 'm', (size_t)size);
    }
    for (;;) {
        ssize_t n = send(fd, buf + off, (size_t)(len - off), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            free(buf);
            return (errno == EPIPE || errno == ECONNRESET) ? 0 : 1;
        }
        off += n;
        if (off == len)
            off = 0;
    }
}

/* The stream of lines: as many SIZE-byte lines as fit in about 256 KiB,
 * written again and again, partial writes continued where they stopped. */
static int peer_lines(int fd, long size)
{
    long count = (256L << 10) / size, len, off = 0;
    char *buf;
    if (size < 1)
        fail("a line needs at least its newline");
    if (count < 1)
        count = 1;
    len = count * size;
    buf = malloc((size_t)len);
    if (!buf)
        fail("out of memory");
    memset(buf, 'l', (size_t)len);
    for (long i = 0; i < count; i++)
        buf[i * size + size - 1] = '\n';
    for (;;) {
        ssize_t n = send(fd, buf + off, (size_t)(len - off), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            free(buf);
            return (errno == EPIPE || errno == ECONNRESET) ? 0 : 1;
        }
        off += n;
        if (off == len)
            off = 0;
    }
}

static int peer_sink(int fd)
{
    static char buf[256 << 10];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == ECONNRESET ? 0 : 1;
        }
    }
}

/* The echo load generator.  Each connection has at most one request in
 * flight: a request goes out as soon as the previous response is complete,
 * until the round's count has been sent.  One epoll_wait (blocking) serves
 * every ready connection, so the generator sleeps whenever the server is
 * the slower side and takes a small share of a core. */
struct load_conn {
    int fd;
    long got;        /* bytes of the current response received */
    int busy;        /* a request is in flight */
};

static void load_send(struct load_conn *c, const char *req, long size)
{
    long off = 0;
    while (off < size) {
        ssize_t n = send(c->fd, req + off, (size_t)(size - off), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;  /* a 1 KiB request into an empty send buffer: never for long */
            die("load: send");
        }
        off += n;
    }
    c->busy = 1;
    c->got = 0;
}

static int peer_load(const char *host, int port, long conns, long size)
{
    struct load_conn *cs = calloc((size_t)conns, sizeof(*cs));
    struct epoll_event *events = calloc((size_t)conns, sizeof(*events));
    char *req = malloc((size_t)size), *rsp = malloc((size_t)size);
    char line[64];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!cs || !events || !req || !rsp)
        fail("out of memory");
    if (ep < 0)
        die("epoll_create1");
    for (long i = 0; i < size; i++)
        req[i] = (char)('a' + i % 26);
    for (long i = 0; i < conns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        cs[i].fd = connect_tcp(host, port);
        if (fcntl(cs[i].fd, F_SETFL, fcntl(cs[i].fd, F_GETFL) | O_NONBLOCK) < 0)
            die("fcntl");
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0)
            die("epoll_ctl");
    }
    printf("ready\n");
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin)) {
        long total = atol(line), sent = 0, done = 0;
        for (long i = 0; i < conns && sent < total; i++, sent++)
            load_send(&cs[i], req, size);
        while (done < total) {
            int n = epoll_wait(ep, events, (int)conns, -1);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                die("epoll_wait");
            }
            for (int e = 0; e < n; e++) {
                struct load_conn *c = &cs[events[e].data.u64];
                ssize_t m = recv(c->fd, rsp + c->got, (size_t)(size - c->got), 0);
                if (m == 0)
                    fail("load: the server closed a connection");
                if (m < 0) {
                    if (errno == EINTR || errno == EAGAIN)
                        continue;
                    die("load: recv");
                }
                if (!c->busy)
                    fail("load: a response nobody asked for");
                if (memcmp(rsp + c->got, req + c->got, (size_t)m))
                    fail("load: the response differs from the request");
                c->got += m;
                if (c->got < size)
                    continue;
                c->busy = 0;
                done++;
                if (sent < total) {
                    load_send(c, req, size);
                    sent++;
                }
            }
        }
        printf("done\n");
        fflush(stdout);
    }
    for (long i = 0; i < conns; i++)
        close(cs[i].fd);
    close(ep);
    free(cs);
    free(events);
    free(req);
    free(rsp);
    return 0;
}

static int peer_main(int argc, char **argv)
{
    long cpu = -1;
    int fd;
    if (argc > 0 && !strncmp(argv[argc - 1], "cpu=", 4)) {
        cpu = strtol(argv[argc - 1] + 4, NULL, 10);
        argc--;
    }
    pin(cpu);
    if (argc == 4 && !strcmp(argv[0], "echo") && !strcmp(argv[1], "tcp")) {
        fd = connect_tcp(argv[2], atoi(argv[3]));
        return peer_echo(fd);
    }
    if (argc == 3 && !strcmp(argv[0], "echo") && !strcmp(argv[1], "unix")) {
        fd = connect_unix(argv[2]);
        return peer_echo(fd);
    }
    if (argc == 4 && !strcmp(argv[0], "source")) {
        fd = connect_tcp(argv[1], atoi(argv[2]));
        return peer_source(fd, atol(argv[3]));
    }
    if (argc == 5 && !strcmp(argv[0], "frames") && !strcmp(argv[1], "tcp")) {
        fd = connect_tcp(argv[2], atoi(argv[3]));
        return peer_frames(fd, atol(argv[4]));
    }
    if (argc == 4 && !strcmp(argv[0], "frames") && !strcmp(argv[1], "unix")) {
        fd = connect_unix(argv[2]);
        return peer_frames(fd, atol(argv[3]));
    }
    if (argc == 4 && !strcmp(argv[0], "lines") && !strcmp(argv[1], "unix")) {
        fd = connect_unix(argv[2]);
        return peer_lines(fd, atol(argv[3]));
    }
    if (argc == 4 && !strcmp(argv[0], "sink") && !strcmp(argv[1], "tcp")) {
        fd = connect_tcp(argv[2], atoi(argv[3]));
        return peer_sink(fd);
    }
    if (argc == 3 && !strcmp(argv[0], "sink") && !strcmp(argv[1], "unix")) {
        fd = connect_unix(argv[2]);
        return peer_sink(fd);
    }
    if (argc == 6 && !strcmp(argv[0], "load") && !strcmp(argv[1], "tcp")) {
        long conns = atol(argv[4]), size = atol(argv[5]);
        if (conns < 1 || conns > 100000 || size < 1 || size > (64L << 20))
            fail("load: CONNS or SIZE out of range");
        return peer_load(argv[2], atoi(argv[3]), conns, size);
    }
    fail("usage: ref peer echo tcp HOST PORT | echo unix PATH | source HOST PORT WSIZE"
         " | frames tcp HOST PORT SIZE | frames unix PATH SIZE | lines unix PATH SIZE"
         " | sink tcp HOST PORT"
         " | sink unix PATH | load tcp HOST PORT CONNS SIZE");
    return 2;
}

/* A peer in a forked child: the same peer code the Python benchmarks run. */
static pid_t fork_peer(int listener, const char *kind, int port, const char *path,
                       const struct params *p)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid > 0)
        return pid;
    close(listener);
    pin(p->peer_cpu);
    if (!strcmp(kind, "echo-tcp"))
        _exit(peer_echo(connect_tcp("127.0.0.1", port)));
    if (!strcmp(kind, "echo-unix"))
        _exit(peer_echo(connect_unix(path)));
    if (!strcmp(kind, "frames-tcp"))
        _exit(peer_frames(connect_tcp("127.0.0.1", port), p->size));
    if (!strcmp(kind, "frames-unix"))
        _exit(peer_frames(connect_unix(path), p->size));
    if (!strcmp(kind, "lines-unix"))
        _exit(peer_lines(connect_unix(path), p->size));
    if (!strcmp(kind, "sink-tcp"))
        _exit(peer_sink(connect_tcp("127.0.0.1", port)));
    _exit(peer_source(connect_tcp("127.0.0.1", port), p->wsize));
}

static void reap(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            die("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("peer process failed");
}

/* -- timing ---------------------------------------------------------------- */

struct bench;
typedef long (*round_fn)(struct bench *b);

struct bench {
    const struct params *p;
    int a, b;                    /* the sockets a workload uses */
    struct sockaddr_in addr;     /* where a workload sends or connects */
    char *buf;
    long fill;                   /* datagrams per udp-drain fill */
    char *rx;                    /* frames: the receive buffer, wsize bytes */
    long rx_start, rx_end;       /* its unconsumed bytes, kept across rounds */
    unsigned long checksum;      /* frames: keeps the split from being optimised out */
};

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static void run_rounds(const char *workload, const char *unit, struct bench *b,
                       round_fn setup, round_fn body)
{
    const struct params *p = b->p;
    static double times[MAX_ROUNDS];
    double units = 0, median;
    for (long i = 0; i < p->warmup; i++) {
        if (setup)
            setup(b);
        body(b);
    }
    for (long i = 0; i < p->rounds; i++) {
        double t0;
        long done;
        if (setup)
            setup(b);
        t0 = now();
        done = body(b);
        times[i] = now() - t0;
        units += (double)done;
    }
    units /= (double)p->rounds;
    qsort(times, (size_t)p->rounds, sizeof(double), cmp_double);
    median = p->rounds % 2 ? times[p->rounds / 2]
                           : (times[p->rounds / 2 - 1] + times[p->rounds / 2]) / 2;
    printf("{\"workload\": \"%s\", \"unit\": \"%s\", \"rounds\": %ld, "
           "\"units_per_round\": %.1f, \"median_s\": %.9g, \"min_s\": %.9g, "
           "\"max_s\": %.9g, \"per_s\": %.6g}\n",
           workload, unit, p->rounds, units, median, times[0], times[p->rounds - 1],
           median > 0 ? units / median : 0.0);
}

/* -- workloads ------------------------------------------------------------- */

static long percall_round(struct bench *b)
{
    char byte = 'x', in;
    for (long i = 0; i < b->p->batch; i++) {
        if (send(b->a, &byte, 1, MSG_NOSIGNAL) != 1)
            die("send");
        if (recv(b->b, &in, 1, 0) != 1)
            die("recv");
    }
    return b->p->batch;
}

static long pingpong_round(struct bench *b)
{
    for (long i = 0; i < b->p->batch; i++) {
        send_all(b->a, b->buf, (size_t)b->p->size);
        recv_exact(b->a, b->buf, (size_t)b->p->size);
    }
    return b->p->batch;
}

static long bulk_round(struct bench *b)
{
    long remaining = b->p->batch;
    while (remaining > 0) {
        size_t want = remaining < b->p->size ? (size_t)remaining : (size_t)b->p->size;
        ssize_t n = recv(b->a, b->buf, want, 0);
        if (n == 0)
            fail("recv: unexpected EOF");
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("recv");
        }
        remaining -= n;
    }
    return b->p->batch;
}

static long bulk_exact_round(struct bench *b)
{
    long remaining = b->p->batch;
    while (remaining > 0) {
        size_t want = remaining < b->p->size ? (size_t)remaining : (size_t)b->p->size;
        recv_exact(b->a, b->buf, want);
        remaining -= (long)want;
    }
    return b->p->batch;
}

/* Receive into one buffer and walk the frames where they lie: each message
 * is a pointer and a length into the buffer; a partial frame at the end is
 * moved to the front before the next recv. */
static long frames_round(struct bench *b)
{
    long count = 0, cap = b->p->wsize;
    char *rx = b->rx;
    while (count < b->p->batch) {
        while (count < b->p->batch && b->rx_end - b->rx_start >= 4) {
            const unsigned char *f = (const unsigned char *)rx + b->rx_start;
            unsigned long len = ((unsigned long)f[0] << 24) | ((unsigned long)f[1] << 16)
                                | ((unsigned long)f[2] << 8) | f[3];
            if (len > (unsigned long)(cap - 4))
                fail("frames: message larger than the receive buffer");
            if ((unsigned long)(b->rx_end - b->rx_start - 4) < len)
                break;
            b->checksum += len + (len ? (unsigned char)f[4] : 0);
            b->rx_start += 4 + (long)len;
            count++;
        }
        if (count == b->p->batch)
            break;
        if (b->rx_start > 0) {
            memmove(rx, rx + b->rx_start, (size_t)(b->rx_end - b->rx_start));
            b->rx_end -= b->rx_start;
            b->rx_start = 0;
        }
        for (;;) {
            ssize_t n = recv(b->a, rx + b->rx_end, (size_t)(cap - b->rx_end), 0);
            if (n == 0)
                fail("recv: unexpected EOF");
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                die("recv");
            }
            b->rx_end += n;
            break;
        }
    }
    return count;
}

/* Receive into one buffer and find each line's newline with memchr where it
 * lies; a partial line at the end is moved to the front before the next recv. */
static long lines_round(struct bench *b)
{
    long count = 0, cap = b->p->wsize;
    char *rx = b->rx;
    while (count < b->p->batch) {
        while (count < b->p->batch) {
            const char *start = rx + b->rx_start;
            const char *nl = memchr(start, '\n', (size_t)(b->rx_end - b->rx_start));
            if (!nl)
                break;
            b->checksum += (unsigned long)(nl - start) + 1;
            b->rx_start += (nl - start) + 1;
            count++;
        }
        if (count == b->p->batch)
            break;
        if (b->rx_start > 0) {
            memmove(rx, rx + b->rx_start, (size_t)(b->rx_end - b->rx_start));
            b->rx_end -= b->rx_start;
            b->rx_start = 0;
        }
        if (b->rx_end == cap)
            fail("lines: a line longer than the receive buffer");
        for (;;) {
            ssize_t n = recv(b->a, rx + b->rx_end, (size_t)(cap - b->rx_end), 0);
            if (n == 0)
                fail("recv: unexpected EOF");
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                die("recv");
            }
            b->rx_end += n;
            break;
        }
    }
    return count;
}

static long send_hdr_round(struct bench *b)
{
    struct iovec iov[2];
    struct msghdr msg;
    size_t hsize = (size_t)b->p->hsize, size = (size_t)b->p->size;
    for (long i = 0; i < b->p->batch; i++) {
        ssize_t n;
        iov[0].iov_base = b->rx;
        iov[0].iov_len = hsize;
        iov[1].iov_base = b->buf;
        iov[1].iov_len = size;
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = 2;
        for (;;) {
            n = sendmsg(b->a, &msg, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                die("sendmsg");
            }
            /* a partial write: advance the vector and send the rest */
            while (msg.msg_iovlen > 0 && (size_t)n >= msg.msg_iov[0].iov_len) {
                n -= (ssize_t)msg.msg_iov[0].iov_len;
                msg.msg_iov++;
                msg.msg_iovlen--;
            }
            if (msg.msg_iovlen == 0)
                break;
            msg.msg_iov[0].iov_base = (char *)msg.msg_iov[0].iov_base + n;
            msg.msg_iov[0].iov_len -= (size_t)n;
        }
    }
    return b->p->batch;
}

static long connect_round(struct bench *b)
{
    for (long i = 0; i < b->p->batch; i++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), s;
        if (c < 0)
            die("socket");
        if (connect(c, (struct sockaddr *)&b->addr, sizeof(b->addr)) < 0)
            die("connect");
        s = accept_one(b->a);
        close(c);
        close(s);
    }
    return b->p->batch;
}

static long udp_fill(struct bench *b)
{
    for (long i = 0; i < b->fill; i++) {
        if (sendto(b->b, b->buf, (size_t)b->p->size, MSG_NOSIGNAL,
                   (struct sockaddr *)&b->addr, sizeof(b->addr)) < 0)
            die("sendto");
    }
    return b->fill;
}

static long udp_drain(struct bench *b)
{
    struct sockaddr_storage from;
    long count = 0;
    for (;;) {
        socklen_t fromlen = sizeof(from);
        ssize_t n = recvfrom(b->a, b->buf, 2048, 0, (struct sockaddr *)&from, &fromlen);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return count;
            if (errno == EINTR)
                continue;
            die("recvfrom");
        }
        count++;
    }
}

static long udp_send_round(struct bench *b)
{
    for (long i = 0; i < b->p->batch; i++) {
        if (sendto(b->b, b->buf, (size_t)b->p->size, MSG_NOSIGNAL,
                   (struct sockaddr *)&b->addr, sizeof(b->addr)) < 0)
            die("sendto");
    }
    return b->p->batch;
}

static long seqpacket_fill(struct bench *b)
{
    for (long i = 0; i < b->fill; i++) {
        if (send(b->b, b->buf, (size_t)b->p->size, MSG_NOSIGNAL) < 0)
            die("send");
    }
    return b->fill;
}

static long udp_drain_mmsg(struct bench *b)
{
    static struct mmsghdr msgs[MAX_VLEN];
    static struct iovec iov[MAX_VLEN];
    static struct sockaddr_storage from[MAX_VLEN];
    long count = 0;
    int vlen = (int)b->p->vlen;
    for (;;) {
        int n;
        for (int i = 0; i < vlen; i++) {
            iov[i].iov_base = b->rx + (size_t)i * SLOT_SIZE;
            iov[i].iov_len = SLOT_SIZE;
            memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
        }
        n = recvmmsg(b->a, msgs, (unsigned)vlen, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return count;
            if (errno == EINTR)
                continue;
            die("recvmmsg");
        }
        for (int i = 0; i < n; i++)
            b->checksum += msgs[i].msg_len;
        count += n;
    }
}

static long udp_send_mmsg_round(struct bench *b)
{
    static struct mmsghdr msgs[MAX_VLEN];
    static struct iovec iov;
    long sent = 0;
    iov.iov_base = b->buf;
    iov.iov_len = (size_t)b->p->size;
    while (sent < b->p->batch) {
        long want = b->p->batch - sent < b->p->vlen ? b->p->batch - sent : b->p->vlen;
        int n;
        for (long i = 0; i < want; i++) {
            memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
            msgs[i].msg_hdr.msg_iov = &iov;
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &b->addr;
            msgs[i].msg_hdr.msg_namelen = sizeof(b->addr);
        }
        n = sendmmsg(b->b, msgs, (unsigned)want, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("sendmmsg");
        }
        sent += n;
    }
    return sent;
}

static long udp_send_gso_round(struct bench *b)
{
    char control[CMSG_SPACE(sizeof(uint16_t))];
    long sent = 0;
    uint16_t segment = (uint16_t)b->p->size;
    while (sent < b->p->batch) {
        long want = b->p->batch - sent < b->p->vlen ? b->p->batch - sent : b->p->vlen;
        struct iovec iov = {b->buf, (size_t)(want * b->p->size)};
        struct msghdr msg;
        struct cmsghdr *cm;
        memset(&msg, 0, sizeof(msg));
        memset(control, 0, sizeof(control));
        msg.msg_name = &b->addr;
        msg.msg_namelen = sizeof(b->addr);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        if (want > 1) {
            msg.msg_control = control;
            msg.msg_controllen = sizeof(control);
            cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            memcpy(CMSG_DATA(cm), &segment, sizeof(segment));
        }
        if (sendmsg(b->b, &msg, MSG_NOSIGNAL) < 0) {
            if (errno == EINTR)
                continue;
            die("sendmsg UDP_SEGMENT");
        }
        sent += want;
    }
    return sent;
}

static int udp_socket(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    return fd;
}

static void bind_loopback(int fd, struct sockaddr_in *bound)
{
    socklen_t len = sizeof(*bound);
    loopback(bound, 0);
    if (bind(fd, (struct sockaddr *)bound, sizeof(*bound)) < 0)
        die("bind");
    if (getsockname(fd, (struct sockaddr *)bound, &len) < 0)
        die("getsockname");
}

static int run_main(int argc, char **argv)
{
    struct params p;
    struct bench b;
    const char *w;
    if (argc < 1)
        fail("usage: ref run WORKLOAD key=value...");
    w = argv[0];
    parse_params(&p, argc - 1, argv + 1);
    pin(p.cpu);
    memset(&b, 0, sizeof(b));
    b.p = &p;
    b.a = b.b = -1;
    b.buf = malloc((size_t)(p.size > 65536 ? p.size : 65536));
    if (!b.buf)
        fail("out of memory");
    memset(b.buf, 'x', (size_t)(p.size > 65536 ? p.size : 65536));

    if (!strcmp(w, "percall")) {
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
            die("socketpair");
        b.a = fds[0];
        b.b = fds[1];
        run_rounds(w, "msgs", &b, NULL, percall_round);
        close(b.a);
        close(b.b);
    } else if (!strcmp(w, "pingpong-tcp") || !strcmp(w, "pingpong-unix")
               || !strcmp(w, "bulk") || !strcmp(w, "bulk-exact")
               || !strcmp(w, "frames-tcp") || !strcmp(w, "frames-unix")
               || !strcmp(w, "lines-unix") || !strcmp(w, "send-hdr")) {
        char dir[] = "/tmp/fsbref-XXXXXX", path[64] = "";
        int listener, tcp = strcmp(w, "pingpong-unix") != 0 && strcmp(w, "frames-unix") != 0
                            && strcmp(w, "lines-unix") != 0;
        int lines = !strcmp(w, "lines-unix");
        int frames = !strncmp(w, "frames-", 7) || lines;  /* both split a receive buffer */
        const char *kind = !strncmp(w, "bulk", 4) ? "source"
                           : lines ? "lines-unix"
                           : frames ? (tcp ? "frames-tcp" : "frames-unix")
                           : !strcmp(w, "send-hdr") ? "sink-tcp"
                           : tcp ? "echo-tcp" : "echo-unix";
        pid_t pid;
        struct sockaddr_in bound;
        if (tcp) {
            listener = listen_tcp(&bound);
        } else {
            if (!mkdtemp(dir))
                die("mkdtemp");
            snprintf(path, sizeof(path), "%s/s", dir);
            listener = listen_unix(path);
        }
        pid = fork_peer(listener, kind, tcp ? ntohs(bound.sin_port) : 0, path, &p);
        b.a = accept_one(listener);
        close(listener);
        if (tcp)
            set_nodelay(b.a);
        if (frames || !strcmp(w, "send-hdr")) {
            b.rx = malloc((size_t)(frames ? p.wsize : p.hsize + 1));
            if (!b.rx)
                fail("out of memory");
            memset(b.rx, 'h', (size_t)(frames ? p.wsize : p.hsize + 1));
        }
        if (!strcmp(w, "bulk"))
            run_rounds(w, "bytes", &b, NULL, bulk_round);
        else if (!strcmp(w, "bulk-exact"))
            run_rounds(w, "bytes", &b, NULL, bulk_exact_round);
        else if (lines)
            run_rounds(w, "lines", &b, NULL, lines_round);
        else if (frames)
            run_rounds(w, "msgs", &b, NULL, frames_round);
        else if (!strcmp(w, "send-hdr"))
            run_rounds(w, "msgs", &b, NULL, send_hdr_round);
        else
            run_rounds(w, "msgs", &b, NULL, pingpong_round);
        if (frames && b.checksum == 0)
            fail("frames: nothing was received");
        free(b.rx);
        close(b.a);
        reap(pid);
        if (!tcp) {
            unlink(path);
            rmdir(dir);
        }
    } else if (!strcmp(w, "connect")) {
        b.a = listen_tcp(&b.addr);
        run_rounds(w, "conns", &b, NULL, connect_round);
        close(b.a);
    } else if (!strcmp(w, "udp-drain") || !strcmp(w, "udp-drain-mmsg")) {
        int size = (int)p.rcvbuf, mmsg = !strcmp(w, "udp-drain-mmsg");
        b.a = udp_socket();
        if (setsockopt(b.a, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
            setsockopt(b.a, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        bind_loopback(b.a, &b.addr);
        if (fcntl(b.a, F_SETFL, fcntl(b.a, F_GETFL) | O_NONBLOCK) < 0)
            die("fcntl");
        b.b = udp_socket();
        b.fill = p.batch;
        if (mmsg) {
            b.rx = malloc((size_t)p.vlen * SLOT_SIZE);
            if (!b.rx)
                fail("out of memory");
            run_rounds(w, "msgs", &b, udp_fill, udp_drain_mmsg);
            if (b.checksum == 0)
                fail("udp-drain-mmsg: nothing was received");
            free(b.rx);
        } else {
            run_rounds(w, "msgs", &b, udp_fill, udp_drain);
        }
        close(b.a);
        close(b.b);
    } else if (!strcmp(w, "seqpacket-drain-mmsg")) {
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
            die("socketpair");
        b.a = pair[0];
        b.b = pair[1];
        if (fcntl(b.a, F_SETFL, fcntl(b.a, F_GETFL) | O_NONBLOCK) < 0)
            die("fcntl");
        b.fill = p.batch;
        b.rx = malloc((size_t)p.vlen * SLOT_SIZE);
        if (!b.rx)
            fail("out of memory");
        run_rounds(w, "msgs", &b, seqpacket_fill, udp_drain_mmsg);
        if (b.checksum == 0)
            fail("seqpacket-drain-mmsg: nothing was received");
        free(b.rx);
        close(b.a);
        close(b.b);
    } else if (!strcmp(w, "udp-send") || !strcmp(w, "udp-send-mmsg")
               || !strcmp(w, "udp-send-gso")) {
        int sink = udp_socket();
        bind_loopback(sink, &b.addr);
        b.b = udp_socket();
        if (!strcmp(w, "udp-send-gso")) {
            if (p.vlen * p.size > 65507)
                fail("udp-send-gso: vlen * size above 65507");
            run_rounds(w, "msgs", &b, NULL, udp_send_gso_round);
        } else if (!strcmp(w, "udp-send-mmsg")) {
            run_rounds(w, "msgs", &b, NULL, udp_send_mmsg_round);
        } else {
            run_rounds(w, "msgs", &b, NULL, udp_send_round);
        }
        close(b.b);
        close(sink);
    } else {
        fail("unknown workload");
    }
    free(b.buf);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && !strcmp(argv[1], "peer"))
        return peer_main(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "run"))
        return run_main(argc - 2, argv + 2);
    fail("usage: ref peer ... | ref run WORKLOAD key=value...");
    return 2;
}
