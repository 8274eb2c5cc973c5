/* bootstrap.c — rank, world and local rank of a multi-process run, and a
 * star of TCP connections to rank 0 for the few bytes that must reach
 * every rank before NCCL exists (bootstrap.h).
 *
 * The wire. Every message is a frame: magic "DSB1", type, payload length
 * (big-endian 32-bit words), payload. A rank connects and says HELLO
 * (its rank and world size); rank 0 answers WELCOME, and READY to all
 * when the last rank is in. A broadcast is DATA from rank 0 to each rank,
 * each answering ACK; an all-gather is DATA from each rank to rank 0,
 * then the whole as DATA to each. A rank that fails sends ABORT (why) on
 * its way out: rank 0 passes it to every rank, so none waits on a rank
 * that is gone. A connection that does not open with the magic is not a
 * rank (a port scanner, a stale client): rank 0 closes it and waits on.
 *
 * Rank 0 binds the loopback address when MASTER_ADDR names one (tests,
 * one machine), every address otherwise (as torch's TCPStore: MASTER_ADDR
 * may be a name the others use that rank 0 cannot bind, behind NAT).
 * SO_REUSEADDR lets a run start on the port of one just ended (its
 * sockets in TIME_WAIT); on Linux it does not let two listeners share a
 * port, so a port in use is still an error.
 */
#include "bootstrap.h"

#include "clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- types --------------------------------------------------------------- */

enum { MAGIC = 0x44534231 /* "DSB1" */ };
enum { T_HELLO = 1, T_WELCOME, T_READY, T_DATA, T_ACK, T_ABORT };
enum { IO_OK, IO_TIMEOUT, IO_EOF, IO_ERR, IO_ABORT, IO_PROTO };
enum { HDR = 12, WHY_MAX = 512, HOSTKEY = 256 };
/* A frame is at most this: a bootstrap carries ids and names, not tensors. */
#define FRAME_MAX ((size_t)1 << 30)
/* Ranks waiting on rank 0 wait this much longer than rank 0 waits on
 * them: rank 0 owns the deadline, and its message (which rank it waited
 * for) is the one worth reading. */
#define GRACE_S 2.0

typedef struct tcp {
	int *fd;        /* rank 0: (world) connection to each rank, fd[0] -1; others: fd[0], to rank 0 */
	char addr[256]; /* MASTER_ADDR */
	int port;       /* MASTER_PORT */
	int broken;     /* a call failed: the others are told, nothing more is sent */
	char why[WHY_MAX];
} tcp;

/* ---- messages ------------------------------------------------------------ */

static void say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen) return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- the environment ----------------------------------------------------- */

/* NAME as an integer in lo..hi: 1, 0 when unset, -1 with a message. */
static int env_int(const char *name, long lo, long hi, int *out, char *err, size_t errlen)
{
	const char *s = getenv(name);
	if (!s) return 0;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (!*s || *end || errno) {
		say(err, errlen, "%s='%s' is not a whole number", name, s);
		return -1;
	}
	if (v < lo || v > hi) {
		say(err, errlen, "%s=%ld is out of range (%ld to %ld)", name, v, lo, hi);
		return -1;
	}
	*out = (int)v;
	return 1;
}

/* DS_BOOTSTRAP_TIMEOUT, seconds: 0 or -1 with a message. */
static int env_timeout(double *t, char *err, size_t errlen)
{
	const char *s = getenv("DS_BOOTSTRAP_TIMEOUT");
	*t = 300; /* torch's default rendezvous timeout */
	if (!s) return 0;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(v) || v <= 0 || v > 1e7) {
		say(err, errlen, "DS_BOOTSTRAP_TIMEOUT='%s' is not a positive number of seconds", s);
		return -1;
	}
	*t = v;
	return 0;
}

int bootstrap_env_launched(void)
{
	return getenv("RANK") || getenv("WORLD_SIZE");
}

/* ---- sockets with deadlines ---------------------------------------------- */

/* Wait for events on fd until deadline (now_s): 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, double deadline)
{
	for (;;) {
		double left = deadline - now_s();
		if (left <= 0) return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int ms = left > 1e6 ? 1000000000 : (int)(left * 1000) + 1;
		int r = poll(&p, 1, ms);
		if (r > 0) return 1;
		if (r < 0 && errno != EINTR) return -1;
	}
}

static int send_all(int fd, const void *buf, size_t n, double deadline)
{
	const char *p = buf;
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k > 0) {
			p += k, n -= (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR) continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int w = wait_fd(fd, POLLOUT, deadline);
			if (w == 0) return IO_TIMEOUT;
			if (w < 0) return IO_ERR;
			continue;
		}
		return errno == EPIPE || errno == ECONNRESET ? IO_EOF : IO_ERR;
	}
	return IO_OK;
}

static int recv_all(int fd, void *buf, size_t n, double deadline)
{
	char *p = buf;
	while (n) {
		ssize_t k = recv(fd, p, n, 0);
		if (k > 0) {
			p += k, n -= (size_t)k;
			continue;
		}
		if (k == 0) return IO_EOF;
		if (errno == EINTR) continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int w = wait_fd(fd, POLLIN, deadline);
			if (w == 0) return IO_TIMEOUT;
			if (w < 0) return IO_ERR;
			continue;
		}
		return errno == ECONNRESET ? IO_EOF : IO_ERR;
	}
	return IO_OK;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int frame_send(int fd, uint32_t type, const void *payload, size_t n, double deadline)
{
	unsigned char h[HDR];
	put32(h, MAGIC), put32(h + 4, type), put32(h + 8, (uint32_t)n);
	int r = send_all(fd, h, HDR, deadline);
	if (r == IO_OK && n) r = send_all(fd, payload, n, deadline);
	return r;
}

/* Read and drop n bytes (a frame not wanted), as far as they come. */
static void discard(int fd, size_t n, double deadline)
{
	char sink[4096];
	while (n && n <= FRAME_MAX) {
		size_t k = n < sizeof sink ? n : sizeof sink;
		if (recv_all(fd, sink, k, deadline) != IO_OK) break;
		n -= k;
	}
}

/* One frame of type want, its payload (exactly n bytes) into buf. A frame
 * ABORT instead: IO_ABORT, its text in why. Any other frame, a length
 * other than n, no magic: IO_PROTO, what came in why. */
static int frame_recv(int fd, uint32_t want, void *buf, size_t n, double deadline, char *why, size_t whylen)
{
	unsigned char h[HDR];
	int r = recv_all(fd, h, HDR, deadline);
	if (r != IO_OK) return r;
	uint32_t type = get32(h + 4), len = get32(h + 8);
	if (get32(h) != MAGIC) {
		snprintf(why, whylen, "not ds's bootstrap protocol");
		return IO_PROTO;
	}
	if (type == T_ABORT) {
		char text[WHY_MAX];
		size_t k = len < sizeof text - 1 ? len : sizeof text - 1;
		r = recv_all(fd, text, k, deadline);
		text[r == IO_OK ? k : 0] = 0;
		if (r == IO_OK) discard(fd, len - k, deadline);
		snprintf(why, whylen, "%s", text);
		return IO_ABORT;
	}
	/* Read what came, so that closing does not reset the connection
	 * (unread data makes close send RST) and lose the ABORT we send. */
	if (type != want || len != n) discard(fd, len, deadline);
	if (type != want) {
		snprintf(why, whylen, "message %u came where %u was due (ranks of different builds?)", type, want);
		return IO_PROTO;
	}
	if (len != n) {
		snprintf(why, whylen, "%u bytes came where %zu were due (ranks of different builds?)", len, n);
		return IO_PROTO;
	}
	return n ? recv_all(fd, buf, n, deadline) : IO_OK;
}

/* "... : why" for a failed frame_recv / frame_send from a peer. */
static void io_reason(char *out, size_t outlen, int r, const char *peer, const char *what, double waited, const char *why)
{
	switch (r) {
	case IO_TIMEOUT: snprintf(out, outlen, "waited %g s for %s (%s)", waited, peer, what); break;
	case IO_EOF: snprintf(out, outlen, "%s closed its connection (it failed or was stopped) during %s", peer, what); break;
	case IO_ABORT: snprintf(out, outlen, "%s gave up: %s", peer, why); break;
	case IO_PROTO: snprintf(out, outlen, "during %s with %s: %s", what, peer, why); break;
	default: snprintf(out, outlen, "%s during %s: %s", peer, what, strerror(errno)); break;
	}
}

static void set_socket_options(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* ---- rank 0 -------------------------------------------------------------- */

/* Say why to every rank still connected (a short wait each, no more: it
 * is a courtesy on the way out) and mark the bootstrap broken. */
static void tcp_fail(const bootstrap_info *b, const char *why)
{
	tcp *t = b->impl;
	if (t->broken) return;
	t->broken = 1;
	snprintf(t->why, sizeof t->why, "%s", why);
	double deadline = now_s() + 0.5;
	int n = b->rank == 0 ? b->world : 1;
	for (int r = 0; r < n; r++)
		if (t->fd[r] >= 0) frame_send(t->fd[r], T_ABORT, why, strlen(why), deadline);
}

/* A socket listening on port: loopback only when MASTER_ADDR is loopback. */
static int listen_on(const bootstrap_info *b, tcp *t, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
	int g = getaddrinfo(t->addr, NULL, &hints, &ai);
	if (g) {
		say(err, errlen, "rank 0 of %d: MASTER_ADDR '%s' does not resolve (%s), so no rank could reach this one", b->world,
		    t->addr, gai_strerror(g));
		return -1;
	}
	int loop = 1;
	for (struct addrinfo *a = ai; a; a = a->ai_next)
		if (a->ai_family == AF_INET ? (ntohl(((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr) >> 24) != 127
		    : a->ai_family == AF_INET6 ? !IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr)
					       : 1)
			loop = 0;
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	int fd = -1;
	if (loop) {
		/* 127.0.0.1 before ::1, which a machine without IPv6 lists but cannot bind */
		const struct addrinfo *a = ai;
		for (const struct addrinfo *x = ai; x; x = x->ai_next)
			if (x->ai_family == AF_INET) {
				a = x;
				break;
			}
		memcpy(&ss, a->ai_addr, a->ai_addrlen), sl = a->ai_addrlen;
		fd = socket(a->ai_family, SOCK_STREAM, 0);
	} else {
		/* Every address, IPv6 and IPv4 on one socket when the machine has IPv6. */
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6, s6->sin6_addr = in6addr_any, sl = sizeof *s6;
		fd = socket(AF_INET6, SOCK_STREAM, 0);
		if (fd >= 0) {
			int zero = 0;
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			memset(&ss, 0, sizeof ss);
			s4->sin_family = AF_INET, s4->sin_addr.s_addr = htonl(INADDR_ANY), sl = sizeof *s4;
			fd = socket(AF_INET, SOCK_STREAM, 0);
		}
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		say(err, errlen, "rank 0 of %d: socket: %s", b->world, strerror(errno));
		return -1;
	}
	if (ss.ss_family == AF_INET) ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)t->port);
	else ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)t->port);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, b->world + 16)) {
		if (errno == EADDRINUSE)
			say(err, errlen, "rank 0 of %d: MASTER_PORT %d is in use (another run, or another program): pick another port",
			    b->world, t->port);
		else
			say(err, errlen, "rank 0 of %d: cannot listen on MASTER_PORT %d: %s", b->world, t->port, strerror(errno));
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* "2, 3 and 5" of the ranks not yet connected, the first few. */
static void missing_ranks(const bootstrap_info *b, const tcp *t, char *out, size_t outlen)
{
	size_t o = 0;
	int k = 0, total = 0;
	for (int r = 1; r < b->world; r++) total += t->fd[r] < 0;
	out[0] = 0;
	for (int r = 1; r < b->world && o < outlen; r++) {
		if (t->fd[r] >= 0) continue;
		if (++k > 8) {
			snprintf(out + o, outlen - o, " and %d more", total - 8);
			break;
		}
		o += (size_t)snprintf(out + o, outlen - o, "%s%d", k == 1 ? "" : k == total ? " and " : ", ", r);
	}
}

/* Accept every rank's connection: 0, or -1 (the others told why). */
static int tcp_serve(bootstrap_info *b, double deadline, char *err, size_t errlen)
{
	tcp *t = b->impl;
	int lfd = listen_on(b, t, err, errlen);
	if (lfd < 0) return -1;
	int cap = b->world + 16, npend = 0, left = b->world - 1, rc = -1;
	struct pollfd *p = calloc((size_t)cap + 1, sizeof *p);
	char why[WHY_MAX] = "";
	if (!p) {
		say(err, errlen, "rank 0: out of memory");
		goto out;
	}
	while (left > 0) {
		double now = now_s();
		if (now >= deadline) {
			char miss[200];
			missing_ranks(b, t, miss, sizeof miss);
			snprintf(why, sizeof why, "rank 0 of %d: waited %g s for rank%s %s to connect to MASTER_PORT %d", b->world,
				 b->timeout_s, left > 1 ? "s" : "", miss, t->port);
			goto fail;
		}
		p[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
		int ms = (int)((deadline - now) * 1000) + 1;
		if (poll(p, (nfds_t)npend + 1, ms) < 0) {
			if (errno == EINTR) continue;
			snprintf(why, sizeof why, "rank 0: poll: %s", strerror(errno));
			goto fail;
		}
		if (p[0].revents & POLLIN) {
			int fd = accept(lfd, NULL, NULL);
			if (fd >= 0 && npend < cap) {
				set_socket_options(fd);
				p[++npend] = (struct pollfd){.fd = fd, .events = POLLIN};
			} else if (fd >= 0) {
				close(fd);
			}
		}
		for (int i = 1; i <= npend; i++) {
			if (!p[i].revents) continue;
			unsigned char hello[8];
			char what[WHY_MAX];
			int fd = p[i].fd;
			/* A rank sends its HELLO as soon as it connects: a second is plenty. */
			double d = now_s() + 1 < deadline ? now_s() + 1 : deadline;
			int r = frame_recv(fd, T_HELLO, hello, sizeof hello, d, what, sizeof what);
			p[i--] = p[npend--];
			if (r != IO_OK) { /* not a rank: forget it */
				close(fd);
				continue;
			}
			long rank = (long)get32(hello), world = (long)get32(hello + 4);
			if (world != b->world)
				snprintf(why, sizeof why, "rank 0 of %d: rank %ld says WORLD_SIZE=%ld", b->world, rank, world);
			else if (rank < 1 || rank >= b->world)
				snprintf(why, sizeof why, "rank 0 of %d: a process says it is rank %ld", b->world, rank);
			else if (t->fd[rank] >= 0)
				snprintf(why, sizeof why, "rank 0 of %d: two processes say they are rank %ld (RANK set twice?)", b->world,
					 rank);
			if (why[0]) {
				frame_send(fd, T_ABORT, why, strlen(why), now_s() + 0.5);
				close(fd);
				goto fail;
			}
			t->fd[rank] = fd, left--;
			if (frame_send(fd, T_WELCOME, NULL, 0, deadline) != IO_OK) {
				snprintf(why, sizeof why, "rank 0 of %d: rank %ld closed its connection while joining", b->world, rank);
				goto fail;
			}
		}
	}
	for (int r = 1; r < b->world; r++)
		if (frame_send(t->fd[r], T_READY, NULL, 0, deadline) != IO_OK) {
			snprintf(why, sizeof why, "rank 0 of %d: rank %d closed its connection while joining", b->world, r);
			goto fail;
		}
	rc = 0;
	goto out;
fail:
	say(err, errlen, "%s", why);
	tcp_fail(b, why);
out:
	for (int i = 1; i <= npend; i++) close(p[i].fd);
	free(p);
	close(lfd);
	return rc;
}

/* ---- the other ranks ----------------------------------------------------- */

/* One connection attempt to addr:port, until deadline: fd or -1 (errno). */
static int connect_once(const struct addrinfo *a, double deadline)
{
	int fd = socket(a->ai_family, SOCK_STREAM, 0);
	if (fd < 0) return -1;
	set_socket_options(fd);
	if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) return fd;
	if (errno == EINPROGRESS) {
		int w = wait_fd(fd, POLLOUT, deadline), e = 0;
		socklen_t el = sizeof e;
		if (w > 0 && !getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) && !e) return fd;
		errno = w == 0 ? ETIMEDOUT : e ? e : errno;
	}
	int keep = errno;
	close(fd);
	errno = keep;
	return -1;
}

/* Connect to rank 0, retrying (rank 0 may start last) until deadline. */
static int tcp_join(bootstrap_info *b, double deadline, char *err, size_t errlen)
{
	tcp *t = b->impl;
	char port[16], last[300] = "no attempt";
	snprintf(port, sizeof port, "%d", t->port);
	double wait = 0.05;
	int fd = -1;
	for (;;) {
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
		int g = getaddrinfo(t->addr, port, &hints, &ai);
		if (g == EAI_SERVICE || g == EAI_FAMILY || g == EAI_SOCKTYPE || g == EAI_BADFLAGS || g == EAI_MEMORY) {
			say(err, errlen, "rank %d of %d: MASTER_ADDR '%s': %s", b->rank, b->world, t->addr, gai_strerror(g));
			return -1;
		}
		if (g) /* not (yet) in DNS: a cluster's names can come up after the job */
			snprintf(last, sizeof last, "MASTER_ADDR '%s' does not resolve (%s)", t->addr,
				 g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
		for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
			fd = connect_once(a, deadline);
			if (fd < 0) snprintf(last, sizeof last, "%s", strerror(errno));
		}
		if (ai) freeaddrinfo(ai);
		if (fd >= 0 || now_s() + wait >= deadline) break;
		sleep_s(wait);
		wait = wait * 2 < 1 ? wait * 2 : 1;
	}
	if (fd < 0) {
		say(err, errlen, "rank %d of %d: no answer from rank 0 at %s:%d (MASTER_ADDR, MASTER_PORT) in %g s: %s", b->rank,
		    b->world, t->addr, t->port, b->timeout_s, last);
		return -1;
	}
	t->fd[0] = fd;
	unsigned char hello[8];
	char why[WHY_MAX] = "";
	put32(hello, (uint32_t)b->rank), put32(hello + 4, (uint32_t)b->world);
	int r = frame_send(fd, T_HELLO, hello, sizeof hello, deadline);
	if (r == IO_OK) r = frame_recv(fd, T_WELCOME, NULL, 0, deadline + GRACE_S, why, sizeof why);
	int stranger = r == IO_PROTO;
	if (r == IO_OK) r = frame_recv(fd, T_READY, NULL, 0, deadline + GRACE_S, why, sizeof why);
	if (r == IO_OK) return 0;
	char reason[WHY_MAX + 100];
	if (stranger)
		snprintf(reason, sizeof reason, "what answers at %s:%d is not rank 0 of a ds run (MASTER_PORT of another program?)",
			 t->addr, t->port);
	else
		io_reason(reason, sizeof reason, r, "rank 0", "the rendezvous (every rank to connect)", b->timeout_s + GRACE_S, why);
	say(err, errlen, "rank %d of %d: %s", b->rank, b->world, reason);
	t->broken = 1;
	return -1;
}

/* ---- collectives over the star ------------------------------------------- */

/* A failed step: err says it, and rank 0 tells the rest. */
static int tcp_step_failed(const bootstrap_info *b, int r, int peer, const char *what, double waited, const char *why, char *err,
			   size_t errlen)
{
	char name[32], reason[WHY_MAX + 100], full[WHY_MAX + 160];
	snprintf(name, sizeof name, "rank %d", peer);
	io_reason(reason, sizeof reason, r, name, what, waited, why);
	snprintf(full, sizeof full, "rank %d of %d: %s", b->rank, b->world, reason);
	say(err, errlen, "%s", full);
	tcp_fail(b, full);
	return -1;
}

static int tcp_usable(const bootstrap_info *b, char *err, size_t errlen)
{
	const tcp *t = b->impl;
	if (!t->broken) return 1;
	say(err, errlen, "rank %d of %d: the bootstrap failed before: %s", b->rank, b->world, t->why[0] ? t->why : "see above");
	return 0;
}

static int tcp_broadcast(const bootstrap_info *b, void *buf, size_t n, char *err, size_t errlen)
{
	tcp *t = b->impl;
	char why[WHY_MAX] = "";
	if (!tcp_usable(b, err, errlen)) return -1;
	if (n > FRAME_MAX) {
		say(err, errlen, "bootstrap broadcast of %zu bytes: more than a bootstrap carries", n);
		return -1;
	}
	double deadline = now_s() + b->timeout_s;
	if (b->rank != 0) {
		int r = frame_recv(t->fd[0], T_DATA, buf, n, deadline + GRACE_S, why, sizeof why);
		if (r == IO_OK) r = frame_send(t->fd[0], T_ACK, NULL, 0, deadline);
		if (r != IO_OK) return tcp_step_failed(b, r, 0, "a broadcast", b->timeout_s + GRACE_S, why, err, errlen);
		return 0;
	}
	for (int p = 1; p < b->world; p++) {
		int r = frame_send(t->fd[p], T_DATA, buf, n, deadline);
		if (r != IO_OK) return tcp_step_failed(b, r, p, "a broadcast", b->timeout_s, "", err, errlen);
	}
	for (int p = 1; p < b->world; p++) {
		int r = frame_recv(t->fd[p], T_ACK, NULL, 0, deadline, why, sizeof why);
		if (r != IO_OK) return tcp_step_failed(b, r, p, "its confirmation of a broadcast", b->timeout_s, why, err, errlen);
	}
	return 0;
}

static int tcp_allgather(const bootstrap_info *b, void *out, const void *in, size_t n, char *err, size_t errlen)
{
	tcp *t = b->impl;
	char why[WHY_MAX] = "";
	size_t all = n * (size_t)b->world;
	if (!tcp_usable(b, err, errlen)) return -1;
	if (n > FRAME_MAX / (size_t)b->world) {
		say(err, errlen, "bootstrap all-gather of %zu bytes a rank: more than a bootstrap carries", n);
		return -1;
	}
	double deadline = now_s() + b->timeout_s;
	if (b->rank != 0) {
		int r = frame_send(t->fd[0], T_DATA, in, n, deadline);
		if (r == IO_OK) r = frame_recv(t->fd[0], T_DATA, out, all, deadline + GRACE_S, why, sizeof why);
		if (r != IO_OK) return tcp_step_failed(b, r, 0, "an all-gather", b->timeout_s + GRACE_S, why, err, errlen);
		return 0;
	}
	if (n && out != in) memmove(out, in, n);
	for (int p = 1; p < b->world; p++) {
		int r = frame_recv(t->fd[p], T_DATA, n ? (char *)out + (size_t)p * n : NULL, n, deadline, why, sizeof why);
		if (r != IO_OK) return tcp_step_failed(b, r, p, "its part of an all-gather", b->timeout_s, why, err, errlen);
	}
	for (int p = 1; p < b->world; p++) {
		int r = frame_send(t->fd[p], T_DATA, out, all, deadline);
		if (r != IO_OK) return tcp_step_failed(b, r, p, "an all-gather", b->timeout_s, "", err, errlen);
	}
	return 0;
}

static void tcp_close(bootstrap_info *b)
{
	tcp *t = b->impl;
	int n = b->rank == 0 ? b->world : 1;
	if (t->broken) {
		/* After an ABORT, close gently: say we are done, then read until
		 * each peer has closed too (or a second is up), so that no data
		 * is left unread here, which would make close reset the
		 * connection and the peer lose the ABORT not yet read. */
		double deadline = now_s() + 1;
		for (int r = 0; r < n; r++)
			if (t->fd[r] >= 0) shutdown(t->fd[r], SHUT_WR);
		for (int r = 0; r < n; r++) {
			char sink[4096];
			while (t->fd[r] >= 0 && wait_fd(t->fd[r], POLLIN, deadline) > 0) {
				ssize_t k = recv(t->fd[r], sink, sizeof sink, 0);
				if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN)) break;
			}
		}
	}
	for (int r = 0; r < n; r++)
		if (t->fd[r] >= 0) close(t->fd[r]);
	free(t->fd);
	free(t);
	free(b);
}

/* ---- one process, and a comm's broadcast --------------------------------- */

static int single_broadcast(const bootstrap_info *b, void *buf, size_t n, char *err, size_t errlen)
{
	(void)b, (void)buf, (void)n, (void)err, (void)errlen;
	return 0;
}

static int single_allgather(const bootstrap_info *b, void *out, const void *in, size_t n, char *err, size_t errlen)
{
	(void)b, (void)err, (void)errlen;
	if (n && out != in) memmove(out, in, n);
	return 0;
}

static void plain_close(bootstrap_info *b) { free(b); }

static int comm_broadcast(const bootstrap_info *b, void *buf, size_t n, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	const comm *c = b->impl;
	c->broadcast(c, buf, n, 0);
	return 0;
}

/* comm.h has no all-gather of bytes: each rank broadcasts its part in turn
 * (world small messages, once, at start). */
static int comm_allgather(const bootstrap_info *b, void *out, const void *in, size_t n, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	const comm *c = b->impl;
	char *o = out;
	if (!n) {
		c->barrier(c);
		return 0;
	}
	if (o + (size_t)b->rank * n != in) memmove(o + (size_t)b->rank * n, in, n);
	for (int r = 0; r < b->world; r++) c->broadcast(c, o + (size_t)r * n, n, r);
	return 0;
}

/* ---- local ranks --------------------------------------------------------- */

/* Which machine this is: host name and boot id. Two containers on one
 * machine can share a host name ("localhost"), two machines never share
 * a boot id; containers with their own names are their own machines,
 * with their own GPUs. */
static void host_key(char key[HOSTKEY])
{
	char host[128] = "", boot[64] = "";
	gethostname(host, sizeof host - 1);
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	if (f) {
		if (!fgets(boot, sizeof boot, f)) boot[0] = 0;
		fclose(f);
	}
	boot[strcspn(boot, "\n")] = 0;
	memset(key, 0, HOSTKEY);
	snprintf(key, HOSTKEY, "%s/%s", host, boot);
}

/* local_rank and local_world by machine, where the launcher did not say. */
static int local_by_host(bootstrap_info *b, int have_rank, int have_world, char *err, size_t errlen)
{
	char mine[HOSTKEY], *all = malloc((size_t)b->world * HOSTKEY);
	if (!all) {
		say(err, errlen, "out of memory");
		return -1;
	}
	host_key(mine);
	if (bootstrap_allgather(b, all, mine, HOSTKEY, err, errlen)) {
		free(all);
		return -1;
	}
	int lr = 0, lw = 0;
	for (int r = 0; r < b->world; r++)
		if (!memcmp(all + (size_t)r * HOSTKEY, mine, HOSTKEY)) lr += r < b->rank, lw++;
	free(all);
	if (!have_rank) b->local_rank = lr;
	if (!have_world) b->local_world = lw;
	if (b->local_rank >= b->local_world) {
		say(err, errlen, "LOCAL_RANK=%d is not below the %d ranks on this machine", b->local_rank, b->local_world);
		return -1;
	}
	return 0;
}

/* ---- entry points -------------------------------------------------------- */

static bootstrap_info *info_new(const char *launcher, double timeout_s, char *err, size_t errlen)
{
	bootstrap_info *b = calloc(1, sizeof *b);
	if (!b) {
		say(err, errlen, "out of memory");
		return NULL;
	}
	*b = (bootstrap_info){.launcher = launcher, .rank = 0, .world = 1, .local_rank = 0, .local_world = 1,
			      .timeout_s = timeout_s, .broadcast = single_broadcast, .allgather = single_allgather,
			      .close = plain_close};
	return b;
}

bootstrap_info *bootstrap_open_env(char *err, size_t errlen)
{
	double timeout;
	if (env_timeout(&timeout, err, errlen)) return NULL;
	if (!bootstrap_env_launched()) return info_new("single", timeout, err, errlen);
	int rank = -1, world = -1, lrank = -1, lworld = -1, port = -1;
	int hr, hw, hlr, hlw;
	if ((hw = env_int("WORLD_SIZE", 1, 1 << 20, &world, err, errlen)) < 0 ||
	    (hr = env_int("RANK", 0, 1 << 20, &rank, err, errlen)) < 0 ||
	    (hlr = env_int("LOCAL_RANK", 0, 1 << 20, &lrank, err, errlen)) < 0 ||
	    (hlw = env_int("LOCAL_WORLD_SIZE", 1, 1 << 20, &lworld, err, errlen)) < 0)
		return NULL;
	if (!hw || !hr) {
		say(err, errlen, "%s is set but %s is not (a launcher such as torchrun sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)",
		    hw ? "WORLD_SIZE" : "RANK", hw ? "RANK" : "WORLD_SIZE");
		return NULL;
	}
	if (rank >= world) {
		say(err, errlen, "RANK=%d is not below WORLD_SIZE=%d", rank, world);
		return NULL;
	}
	if (hlw && lworld > world) {
		say(err, errlen, "LOCAL_WORLD_SIZE=%d is more than WORLD_SIZE=%d", lworld, world);
		return NULL;
	}
	if (hlr && hlw && lrank >= lworld) {
		say(err, errlen, "LOCAL_RANK=%d is not below LOCAL_WORLD_SIZE=%d", lrank, lworld);
		return NULL;
	}
	if (hlr && lrank > rank) {
		say(err, errlen, "LOCAL_RANK=%d is more than RANK=%d", lrank, rank);
		return NULL;
	}
	const char *addr = getenv("MASTER_ADDR");
	if (world > 1) {
		if (!addr || !*addr) {
			say(err, errlen, "MASTER_ADDR is not set (the host name or address of rank 0, with WORLD_SIZE=%d)", world);
			return NULL;
		}
		if (strlen(addr) >= 256) {
			say(err, errlen, "MASTER_ADDR is longer than a host name can be");
			return NULL;
		}
		int hp = env_int("MASTER_PORT", 1, 65535, &port, err, errlen);
		if (hp < 0) return NULL;
		if (!hp) {
			say(err, errlen, "MASTER_PORT is not set (the TCP port rank 0 listens on, with WORLD_SIZE=%d)", world);
			return NULL;
		}
	}
	bootstrap_info *b = info_new("torchrun", timeout, err, errlen);
	if (!b) return NULL;
	b->rank = rank, b->world = world;
	b->local_rank = hlr ? lrank : 0, b->local_world = hlw ? lworld : 1;
	if (world == 1) return b;
	double deadline = now_s() + timeout;
	tcp *t = calloc(1, sizeof *t);
	int *fd = malloc((size_t)world * sizeof *fd);
	if (!t || !fd) {
		free(t), free(fd), free(b);
		say(err, errlen, "out of memory");
		return NULL;
	}
	for (int r = 0; r < world; r++) fd[r] = -1;
	t->fd = fd, t->port = port;
	snprintf(t->addr, sizeof t->addr, "%s", addr);
	b->impl = t, b->broadcast = tcp_broadcast, b->allgather = tcp_allgather, b->close = tcp_close;
	if ((rank == 0 ? tcp_serve(b, deadline, err, errlen) : tcp_join(b, deadline, err, errlen)) ||
	    ((!hlr || !hlw) && local_by_host(b, hlr, hlw, err, errlen))) {
		bootstrap_close(b);
		return NULL;
	}
	return b;
}

bootstrap_info *bootstrap_open_comm(const comm *c, char *err, size_t errlen)
{
	double timeout;
	if (env_timeout(&timeout, err, errlen)) return NULL;
	bootstrap_info *b = info_new("comm", timeout, err, errlen);
	if (!b) return NULL;
	b->rank = c->rank, b->world = c->world, b->impl = (void *)c;
	b->broadcast = comm_broadcast, b->allgather = comm_allgather;
	/* OpenMPI's, then MPICH's (Hydra) names; Slurm's SLURM_LOCALID has no
	 * count beside it that is always a plain number. */
	static const char *const names[][2] = {{"OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
					       {"MPI_LOCALRANKID", "MPI_LOCALNRANKS"}};
	int hlr = 0, hlw = 0;
	for (size_t i = 0; i < sizeof names / sizeof *names && !(hlr && hlw); i++) {
		int lr, lw;
		int a = env_int(names[i][0], 0, 1 << 20, &lr, err, errlen), z = env_int(names[i][1], 1, 1 << 20, &lw, err, errlen);
		if (a < 0 || z < 0) {
			free(b);
			return NULL;
		}
		if (a > 0 && z > 0 && lr < lw) b->local_rank = lr, b->local_world = lw, hlr = hlw = 1;
	}
	if ((!hlr || !hlw) && c->world > 1 && local_by_host(b, 0, 0, err, errlen)) {
		free(b);
		return NULL;
	}
	return b;
}

int bootstrap_broadcast(const bootstrap_info *b, void *buf, size_t n, char *err, size_t errlen)
{
	return b->broadcast(b, buf, n, err, errlen);
}

int bootstrap_allgather(const bootstrap_info *b, void *out, const void *in, size_t n, char *err, size_t errlen)
{
	return b->allgather(b, out, in, n, err, errlen);
}

int bootstrap_barrier(const bootstrap_info *b, char *err, size_t errlen)
{
	return b->allgather(b, NULL, NULL, 0, err, errlen);
}

void bootstrap_close(bootstrap_info *b)
{
	if (b && b->close) b->close(b);
}
