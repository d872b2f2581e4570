/* In-namespace set-up step of the unshare backend, compiled once (see _nsinit_native.py).
 *
 * The same steps as _nsinit.py, in the same order, without starting an interpreter per command:
 * util-linux unshare execs this program as uid 0 of a fresh user namespace (pid 1 of a fresh PID
 * namespace when the policy isolates PIDs); it reads the plan from the descriptor named by its
 * only argument, builds the sandbox's filesystem, pivots into it, sets the host name, brings up
 * loopback and forbids nested user namespaces if asked. As pid 1 it then keeps its capabilities
 * in the sandbox's user namespace (an empty bounding set, no ambient or inheritable ones, not
 * dumpable: the command cannot reach it), forks the command's process, which applies the
 * rlimits, joins a fresh session keyring, drops every capability, sets no_new_privs, installs
 * the seccomp program and execs the command with exactly the plan's environment, and reaps
 * orphans until the command exits, then exits with its status (128 + N after signal N).
 * Outside a PID namespace of its own it does all that in its own process and execs.
 *
 * --init [--close=FD] [--NAME=SOFT[:HARD]]... -- COMMAND...
 *             PID 1 of a cold bubblewrap sandbox (bwrap --as-pid-1 --cap-add ALL: bubblewrap
 *             built it, set no_new_privs, a new session and the seccomp filter, the command's
 *             environment and directory): keeps its capabilities as above, forks the command's
 *             process, which applies the limits (named as util-linux prlimit names them),
 *             drops every capability and execs the command, and reaps as above.
 *
 * The plan is a list of records, each "TAG\0COUNT\0FIELD\0...FIELD\0" (COUNT fields):
 *   op KIND TARGET SOURCE SIZE   (SOURCE and SIZE may be empty)
 *   cwd PATH | hostname NAME | net 0/1 | nested 0/1 | seccomp HEX | close FD
 *   rlimit NAME SOFT HARD        (NAME: fsize, nofile, cpu, as, nproc)
 *   argv ARG... | env KEY=VALUE...
 * A set-up failure prints one "cleanroom-nsinit: ..." line on stderr and exits with 125.
 *
 * Two more modes keep a sandbox warm for the commands of one test (see _warm.py):
 *   --hold FD   run by unshare like the above, with the plan's filesystem minus what each
 *               command gets afresh (/proc's contents, /tmp, /dev/shm, the workspace and the
 *               other host directories bound below the top level; "op mountpoint TARGET
 *               SOURCE" records make their mount points): builds it, drops every
 *               capability, becomes non-dumpable, prints "ready" and waits for its stdin to
 *               close. Its namespaces are the sandbox the commands enter.
 *   --enter FD  run on the host by the command's launcher (in the command's cgroups): clones
 *               the host mounts the plan binds afresh (open_tree), joins the holder's user,
 *               mount and UTS namespaces (and network, where isolated) after checking that the
 *               holder is still the process named by the plan's "holder PID STARTTIME" record,
 *               becomes the holder's uid and gid 0 without supplementary groups (the
 *               sandbox's unprivileged host user where the holder runs as that user),
 *               unshares its own mount, IPC, UTS, cgroup and PID namespaces, and as PID 1 of
 *               the new PID namespace mounts a fresh /proc, /tmp and /dev/shm and empties its
 *               bounding set, then forks the command's process, which goes on as the first
 *               mode does (keyring, capabilities, no_new_privs, seccomp, command). PID 1 keeps
 *               its capabilities (so the command cannot reach its descriptors through /proc)
 *               and the command's stdout and stderr until the command has exited, everything
 *               left in its PID namespace is killed and reaped and the exit status is written
 *               to the launcher's status pipe: the engine reads the streams' end with it.
 *               "bind_nosuid 1" makes its binds nosuid and nodev, as bubblewrap's are.
 *
 * And one more forks every command's launcher (see namespace/launcher_server.py, prepared.py):
 *   --serve SOCK  run on the host once per engine process (it dies with the engine's thread
 *               that started it): for each request on the socket (a message: a byte of flags
 *               and the launcher's orders, with the descriptors of the command's stdin, stdout
 *               and stderr, and as the flags say of a pipe the rest of the orders come from and
 *               one the command's init reports its status to) it forks with CLONE_PARENT (the
 *               launcher is the engine's own child) and answers
 *               with the launcher's PID (a negative errno if the fork failed). The launcher
 *               starts a session and joins a fresh session keyring, takes the three streams,
 *               closes every other descriptor and carries out its orders: "join PATH" (writes 0
 *               to that cgroup.procs), "rlimit NAME SOFT HARD", "fd NUMBER PATH" (opened for
 *               reading at NUMBER) and "argv ARG...", which it execs (searched in PATH), or,
 *               where it names this program's --enter, goes on as that mode in the same
 *               process. Orders without "argv" (a launcher made ahead of its command) are
 *               followed by the rest, read from the pipe; nothing to read there (the engine is
 *               gone): it exits. A launcher made ahead whose orders name --enter and whose
 *               plan names no command enters the warm sandbox ahead of its command: its init
 *               makes the fresh mounts and forks the command's process, confined ahead as the
 *               plan's rlimit and seccomp records say (those of the commands like the last
 *               one: limits, a fresh keyring, no capabilities, no_new_privs, seccomp). The
 *               rest of the plan (rlimits, seccomp, cwd, argv, env) comes on that pipe: the init
 *               reads it, mounts the command's trees and hands it on, and the command's
 *               process changes directory and execs the command. A rest naming another
 *               confinement gets a process forked and confined afresh; a plan without those
 *               records, a process that reads the rest and confines itself; nothing there: it
 *               exits. Its failures print one "cleanroom-launcher: ..." line and exit with 125.
 *               "op passed TARGET" records of such a plan name what is mounted only once the
 *               command is known (its workspace): the pipe is then a socket, and the rest of the
 *               plan comes with one descriptor per such record (SCM_RIGHTS: a private, detached
 *               clone the engine made of the host tree, see idmap.detached_tree), moved onto
 *               TARGET in the order of the records before the command is confined.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SETUP_FAILED 125
#define MAX_OPS 4096
#define MAX_ITEMS 65536

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#define MOUNT_ATTR_RDONLY_ 0x1
#define MOUNT_ATTR_NOSUID_ 0x2
#define MOUNT_ATTR_NODEV_ 0x4
#define AT_RECURSIVE_ 0x8000
#define KEYCTL_JOIN_SESSION_KEYRING_ 1
#define CAP_VERSION_3_ 0x20080522

struct mount_attr_ {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

struct op {
    const char *kind, *target, *source, *size;
};

static struct op ops[MAX_OPS];
static int n_ops;
static int source_fds[MAX_OPS], source_dirs[MAX_OPS];
static const char *holder_pid = "", *holder_start = "";
static int join_net, bind_nosuid;
static const char *cwd = "/", *hostname = "cleanroom", *seccomp_hex = "";
static int net, nested;
static char *argv_[MAX_ITEMS + 1], *env_[MAX_ITEMS + 1];
static const char *joins[16];
static int n_joins;
static struct {
    int number;
    const char *path;
} fd_files[10];
static int n_fd_files;
struct rlimit_setting {
    const char *name;
    rlim_t soft, hard;
};
static struct rlimit_setting rlims[8];
static int n_rlims;
static const char *self_path = "";
static int status_fd = -1; /* where the init of a command entering a warm sandbox reports */
static int more_fd = -1;   /* where a launcher made ahead of its command reads the rest */
#define MAX_PASSED 4
static int passed_fds[MAX_PASSED]; /* the trees mounted once the command is known */
static int n_passed;

static void fail(const char *fmt, ...) {
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(line, sizeof line, "cleanroom-nsinit: ");
    n += vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2) n = sizeof line - 2;
    line[n++] = '\n';
    if (write(2, line, n) < 0) { /* nothing more to say */ }
    _exit(SETUP_FAILED);
}

static void check(int result, const char *what, const char *arg) {
    if (result != 0) fail("%s%s: %s", what, arg, strerror(errno));
}

/* ---- the plan ---------------------------------------------------------------------------- */

/* The descriptors that came with the data read by msg (SCM_RIGHTS), kept in passed_fds. */
static void take_passed(struct msghdr *msg) {
    if (msg->msg_flags & MSG_CTRUNC) fail("too many descriptors came with the command");
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *fds = (int *)CMSG_DATA(c);
        for (int i = 0; i < n; i++) {
            if (n_passed >= MAX_PASSED) fail("too many descriptors came with the command");
            passed_fds[n_passed++] = fds[i];
        }
    }
}

/* Everything readable from fd; with_fds: a socket, whose first message may bring descriptors
 * (take_passed). */
static char *read_all_fds(int fd, size_t *len, int with_fds) {
    size_t cap = 1 << 16, used = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) fail("read the plan: out of memory");
        ssize_t got;
        if (with_fds && used == 0) {
            union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * MAX_PASSED)];
            } control;
            struct iovec iov = {buf, cap};
            struct msghdr msg = {0};
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.buf;
            msg.msg_controllen = sizeof control.buf;
            got = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
            if (got >= 0) take_passed(&msg);
        } else {
            got = read(fd, buf + used, cap - used);
        }
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) fail("read the plan: %s", strerror(errno));
        if (got == 0) break;
        used += (size_t)got;
        if (used == cap) buf = realloc(buf, (cap *= 2) + 1);
    }
    close(fd);
    buf[used] = '\0';
    *len = used;
    return buf;
}

static char *read_all(int fd, size_t *len) { return read_all_fds(fd, len, 0); }

static char *next_field(char **pos, char *end) {
    if (*pos >= end) fail("the plan is cut short");
    char *field = *pos;
    char *nul = memchr(field, '\0', (size_t)(end - field));
    if (!nul) fail("the plan is cut short");
    *pos = nul + 1;
    return field;
}

static rlim_t number(const char *text) {
    char *rest;
    errno = 0;
    unsigned long long value = strtoull(text, &rest, 10);
    if (errno || !*text || *rest) fail("the plan holds a bad number: %s", text);
    return (rlim_t)value;
}

static int allow_no_command;

static void parse_plan(char *buf, size_t len) {
    char *pos = buf, *end = buf + len;
    int n_argv = 0, n_env = 0;
    while (pos < end) {
        char *tag = next_field(&pos, end);
        rlim_t count = number(next_field(&pos, end));
        if (count > MAX_ITEMS) fail("the plan's %s record is too long", tag);
        char *f[MAX_ITEMS > 4 ? 4 : MAX_ITEMS];
        if (!strcmp(tag, "argv") || !strcmp(tag, "env")) {
            char **into = tag[0] == 'a' ? argv_ : env_;
            int *n = tag[0] == 'a' ? &n_argv : &n_env;
            for (rlim_t i = 0; i < count; i++) {
                if (*n >= MAX_ITEMS) fail("the plan's %s record is too long", tag);
                into[(*n)++] = next_field(&pos, end);
            }
            continue;
        }
        if (count > 4) fail("the plan's %s record has %llu fields", tag, (unsigned long long)count);
        for (rlim_t i = 0; i < count; i++) f[i] = next_field(&pos, end);
        if (!strcmp(tag, "op") && count == 4) {
            if (n_ops >= MAX_OPS) fail("the plan has too many filesystem operations");
            ops[n_ops++] = (struct op){f[0], f[1], f[2], f[3]};
        } else if (!strcmp(tag, "cwd") && count == 1) {
            cwd = f[0];
        } else if (!strcmp(tag, "hostname") && count == 1) {
            hostname = f[0];
        } else if (!strcmp(tag, "net") && count == 1) {
            net = !strcmp(f[0], "1");
        } else if (!strcmp(tag, "nested") && count == 1) {
            nested = !strcmp(f[0], "1");
        } else if (!strcmp(tag, "holder") && count == 2) {
            holder_pid = f[0];
            holder_start = f[1];
        } else if (!strcmp(tag, "bind_nosuid") && count == 1) {
            bind_nosuid = !strcmp(f[0], "1");
        } else if (!strcmp(tag, "close") && count == 1) {
            close((int)number(f[0])); /* the descriptor this program was started from */
        } else if (!strcmp(tag, "join_net") && count == 1) {
            join_net = !strcmp(f[0], "1");
        } else if (!strcmp(tag, "seccomp") && count == 1) {
            seccomp_hex = f[0];
        } else if (!strcmp(tag, "join") && count == 1 && n_joins < 16) {
            joins[n_joins++] = f[0];
        } else if (!strcmp(tag, "fd") && count == 2 && n_fd_files < 10) {
            fd_files[n_fd_files].number = (int)number(f[0]);
            fd_files[n_fd_files++].path = f[1];
        } else if (!strcmp(tag, "rlimit") && count == 3 && n_rlims < 8) {
            rlims[n_rlims].name = f[0];
            rlims[n_rlims].soft = number(f[1]);
            rlims[n_rlims].hard = number(f[2]);
            n_rlims++;
        } else {
            fail("unknown plan record %s with %llu fields", tag, (unsigned long long)count);
        }
    }
    if (n_argv == 0 && !allow_no_command) fail("the plan names no command");
    argv_[n_argv] = NULL;
    env_[n_env] = NULL;
}

/* ---- filesystem -------------------------------------------------------------------------- */

static void make_dirs(const char *path) {
    char buf[4096];
    if (strlen(path) >= sizeof buf) fail("path too long: %s", path);
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) fail("mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) fail("mkdir %s: %s", buf, strerror(errno));
}

static void make_parent(const char *path) {
    char buf[4096];
    if (strlen(path) >= sizeof buf) fail("path too long: %s", path);
    strcpy(buf, path);
    char *slash = strrchr(buf, '/');
    if (slash && slash != buf) {
        *slash = '\0';
        make_dirs(buf);
    }
}

/* Create path (a directory, or an empty file when like is not a directory). */
static void ensure(const char *path, const char *like) {
    struct stat st;
    if (lstat(path, &st) == 0) return;
    if (stat(like, &st) == 0 && S_ISDIR(st.st_mode)) {
        make_dirs(path);
        return;
    }
    make_parent(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fail("create %s: %s", path, strerror(errno));
    close(fd);
}

static void set_attributes(const char *target, uint64_t attrs) {
    struct mount_attr_ attr = {attrs, 0, 0, 0};
    long r = syscall(SYS_mount_setattr, AT_FDCWD, target, AT_RECURSIVE_, &attr, sizeof attr);
    check(r == 0 ? 0 : -1, "make read-only ", target);
}

static void bind_mount(const char *source, const char *target, int read_only, int nodev) {
    ensure(target, source);
    if (mount(source, target, NULL, MS_BIND | MS_REC, NULL) != 0)
        fail("mount %s on %s: %s", source, target, strerror(errno));
    uint64_t attrs = (read_only ? MOUNT_ATTR_RDONLY_ : 0) | (nodev ? MOUNT_ATTR_NODEV_ : 0);
    if (attrs) set_attributes(target, attrs);
}

static void tmpfs(const char *target, const char *mode, const char *size, unsigned long flags) {
    char data[128];
    make_dirs(target);
    if (size && *size)
        snprintf(data, sizeof data, "mode=%s,size=%s", mode, size);
    else
        snprintf(data, sizeof data, "mode=%s", mode);
    if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | flags, data) != 0)
        fail("mount tmpfs on %s: %s", target, strerror(errno));
}

static void remount_ro(const char *target) {
    if (mount(NULL, target, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0)
        fail("mount None on %s: %s", target, strerror(errno));
}

/* An empty read-only directory over target, as bubblewrap makes one (the mount read-only, not
 * the tmpfs): a warm sandbox's command hides it afresh over a holder bubblewrap built. */
static void hide_dir(const char *target) {
    tmpfs(target, "0555", NULL, 0);
    if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
              NULL) != 0)
        fail("make %s read-only: %s", target, strerror(errno));
}

static void join3(char *out, size_t size, const char *a, const char *b, const char *c) {
    if ((size_t)snprintf(out, size, "%s%s%s", a, b, c) >= size) fail("path too long: %s%s", a, c);
}

static void join(char *out, size_t size, const char *a, const char *b) {
    join3(out, size, a, "", b);
}

static void make_dev(const char *target) {
    static const char *nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
    static const char *links[][2] = {{"fd", "/proc/self/fd"},      {"stdin", "/proc/self/fd/0"},
                                     {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
                                     {"ptmx", "pts/ptmx"}};
    char src[4096], dst[4096];
    tmpfs(target, "0755", NULL, 0);
    for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
        join(src, sizeof src, "/oldroot/dev/", nodes[i]);
        join3(dst, sizeof dst, target, "/", nodes[i]);
        bind_mount(src, dst, 0, 0);
    }
    for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
        join3(dst, sizeof dst, target, "/", links[i][0]);
        check(symlink(links[i][1], dst), "symlink ", dst);
    }
    join(dst, sizeof dst, target, "/shm");
    check(mkdir(dst, 0755), "mkdir ", dst);
    join(dst, sizeof dst, target, "/pts");
    check(mkdir(dst, 0755), "mkdir ", dst);
    /* Pseudo-terminals are optional: a failure to mount devpts is not an error. */
    mount("devpts", dst, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620");
}

static void apply(const struct op *op, int own_pid_ns) {
    char dest[4096], source[4096];
    if (!strcmp(op->target, "/"))
        join(dest, sizeof dest, "/newroot", "");
    else
        join(dest, sizeof dest, "/newroot", op->target);
    const char *kind = op->kind;
    if (!strcmp(kind, "ro-bind") || !strcmp(kind, "bind")) {
        join(source, sizeof source, "/oldroot", op->source);
        bind_mount(source, dest, kind[0] == 'r', 0);
    } else if (!strcmp(kind, "symlink")) {
        make_parent(dest);
        check(symlink(op->source, dest), "symlink ", dest);
    } else if (!strcmp(kind, "dir")) {
        make_dirs(dest);
    } else if (!strcmp(kind, "hide-dir")) {
        hide_dir(dest);
    } else if (!strcmp(kind, "hide-file")) {
        bind_mount("/oldroot/dev/null", dest, 1, 1);
    } else if (!strcmp(kind, "tmpfs")) {
        tmpfs(dest, "1777", op->size, 0);
    } else if (!strcmp(kind, "proc")) {
        make_dirs(dest);
        if (own_pid_ns) {
            if (mount("proc", dest, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
                fail("mount proc on %s: %s", dest, strerror(errno));
        } else {
            bind_mount("/oldroot/proc", dest, 0, 0);
        }
    } else if (!strcmp(kind, "dev")) {
        make_dev(dest);
    } else if (!strcmp(kind, "remount-ro")) {
        remount_ro(dest);
    } else if (!strcmp(kind, "mountpoint")) { /* a warm sandbox's: each command binds there */
        join(source, sizeof source, "/oldroot", op->source);
        ensure(dest, source);
    } else {
        fail("unknown filesystem operation '%s'", kind);
    }
}

/* ---- privileges and the rest ------------------------------------------------------------- */

static void loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) fail("socket: %s", strerror(errno));
    struct ifreq req;
    memset(&req, 0, sizeof req);
    strcpy(req.ifr_name, "lo");
    check(ioctl(s, SIOCGIFFLAGS, &req), "read the flags of ", "lo");
    req.ifr_flags |= IFF_UP;
    check(ioctl(s, SIOCSIFFLAGS, &req), "bring up ", "lo");
    close(s);
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        fail("write %s: %s", path, strerror(errno));
    close(fd);
}

/* The kernel's last capability (the bounding set answers for every one it knows; no /proc
 * needed: bubblewrap's PID 1 may run where none is mounted). */
static int last_capability(void) {
    int cap = 0;
    while (prctl(PR_CAPBSET_READ, cap + 1, 0, 0, 0) >= 0) cap++;
    return cap;
}

static void set_rlimits(void) {
    static const struct {
        const char *name;
        int resource;
    } known[] = {{"fsize", RLIMIT_FSIZE},
                 {"nofile", RLIMIT_NOFILE},
                 {"cpu", RLIMIT_CPU},
                 {"data", RLIMIT_DATA},
                 {"nproc", RLIMIT_NPROC}};
    for (int i = 0; i < n_rlims; i++) {
        size_t k = 0;
        while (k < sizeof known / sizeof *known && strcmp(known[k].name, rlims[i].name)) k++;
        if (k == sizeof known / sizeof *known) fail("unknown rlimit %s", rlims[i].name);
        struct rlimit limit = {rlims[i].soft, rlims[i].hard};
        check(setrlimit(known[k].resource, &limit), "setrlimit ", rlims[i].name);
    }
}

static void fresh_session_keyring(void) {
    /* A new, empty session keyring: the engine's (inherited) must not be reachable. */
    if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING_, NULL) < 0 && errno != ENOSYS)
        fail("join a fresh session keyring: %s", strerror(errno));
}

/* Empty the bounding set (what an exec could gain): the capabilities held stay effective. */
static void drop_bounding_set(int last_cap) {
    char what[64];
    for (int cap = 0; cap <= last_cap; cap++) {
        snprintf(what, sizeof what, "%d", cap);
        check(prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop capability ", what);
    }
}

/* No ambient or inheritable capability; the permitted and effective ones kept, or gone too. */
static void set_capabilities(int keep) {
    struct {
        uint32_t version;
        int pid;
    } header = {CAP_VERSION_3_, 0};
    struct {
        uint32_t effective, permitted, inheritable;
    } data[2];
    memset(data, 0, sizeof data);
    check(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps", "");
    if (keep) check((int)syscall(SYS_capget, &header, data), "capget", "");
    data[0].inheritable = data[1].inheritable = 0;
    check((int)syscall(SYS_capset, &header, data), "capset", "");
}

/* No capability held or to be gained (the bounding set already empty: drop_bounding_set). */
static void drop_held_privileges(void) {
    set_capabilities(0);
    check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs", "");
}

/* What PID 1 of a sandbox keeps while the command runs: the capabilities it holds in the
 * sandbox's user namespace, with nothing an exec could gain or hand on (an empty bounding set,
 * no ambient or inheritable capability). The command, holding none, then can neither trace it
 * nor read its memory or environment nor take its descriptors (through /proc or pidfd_getfd):
 * the kernel lets a process of the same user do that only to one whose capabilities it holds. */
static void keep_capabilities(int last_cap) {
    drop_bounding_set(last_cap);
    set_capabilities(1);
}

static void drop_privileges(int last_cap) {
    drop_bounding_set(last_cap);
    drop_held_privileges();
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void install_seccomp(void) {
    size_t len = strlen(seccomp_hex);
    if (len == 0 || len % 16) fail("the plan's seccomp program is malformed");
    size_t size = len / 2;
    unsigned char *program = malloc(size);
    if (!program) fail("seccomp: out of memory");
    for (size_t i = 0; i < size; i++) {
        int high = hex_digit(seccomp_hex[2 * i]), low = hex_digit(seccomp_hex[2 * i + 1]);
        if (high < 0 || low < 0) fail("the seccomp program is malformed");
        program[i] = (unsigned char)(high << 4 | low);
    }
    struct sock_fprog prog = {(unsigned short)(size / 8), (struct sock_filter *)program};
    check(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0), "seccomp", "");
}

static void build_root(int own_pid_ns) {
    if (net) loopback_up();
    /* Per user namespace: 0 forbids the command from creating any below ours. */
    if (!nested) write_file("/proc/sys/user/max_user_namespaces", "0");
    check(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / private", "");
    tmpfs("/tmp", "0755", NULL, 0);
    check(chdir("/tmp"), "chdir ", "/tmp");
    check(mkdir("newroot", 0755), "mkdir ", "newroot");
    check(mkdir("oldroot", 0755), "mkdir ", "oldroot");
    check((int)syscall(SYS_pivot_root, ".", "oldroot"), "pivot_root", "");
    tmpfs("/newroot", "0755", NULL, 0);
    for (int i = 0; i < n_ops; i++) apply(&ops[i], own_pid_ns);
    check(chdir("/newroot"), "chdir ", "/newroot");
    check((int)syscall(SYS_pivot_root, ".", "."), "pivot_root", "");
    check(umount2(".", MNT_DETACH), "detach the old root", "");
    check(chdir("/"), "chdir ", "/");
    check(sethostname(hostname, strlen(hostname)), "sethostname", "");
}

/* What every command gets for itself, last: limits, keyring, no privileges, seccomp, cwd (the
 * bounding set is emptied before: drop_bounding_set). */
static void confine(void) {
    set_rlimits();
    fresh_session_keyring();
    drop_held_privileges();
    install_seccomp();
    check(chdir(cwd), "chdir ", cwd);
}

/* execve argv_[0], searched in the PATH of the command's own environment when it names no
 * directory; unlike execvp, a file without a known format is an error, never run by /bin/sh.
 * Returns the errno to report: the first that is not "not there", else the last. */
static int exec_search(void) {
    const char *program = argv_[0];
    if (strchr(program, '/')) {
        execve(program, argv_, env_);
        return errno;
    }
    const char *path = "/bin:/usr/bin";
    size_t prefix = strlen("PATH=");
    for (char **e = env_; *e; e++)
        if (!strncmp(*e, "PATH=", prefix)) path = *e + prefix;
    int saved = 0, last = ENOENT;
    char full[4096];
    for (const char *dir = path;; dir++) {
        const char *end = strchrnul(dir, ':');
        int n = snprintf(full, sizeof full, "%.*s%s%s", (int)(end - dir), dir,
                         end == dir ? "" : "/", program);
        if (n > 0 && (size_t)n < sizeof full) {
            execve(full, argv_, env_);
            last = errno;
            if (!saved && last != ENOENT && last != ENOTDIR) saved = last;
        }
        if (!*end) break;
        dir = end;
    }
    return saved ? saved : last;
}

/* exec the command; on failure report like a shell (127 not found, 126 otherwise). */
static void execute(void) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGXFSZ, SIG_DFL);
    setsid();
    int err = exec_search();
    char line[4096];
    int n = err == ENOENT
                ? snprintf(line, sizeof line, "cleanroom: command not found: %s\n", argv_[0])
                : snprintf(line, sizeof line, "cleanroom: cannot execute %s: %s\n", argv_[0],
                           strerror(err));
    if (n > (int)sizeof line - 1) n = sizeof line - 1;
    if (write(2, line, n) < 0) { /* nothing more to say */ }
    _exit(err == ENOENT ? 127 : 126);
}

static int reap_until(pid_t child) {
    for (;;) {
        int status;
        pid_t pid = wait(&status);
        if (pid < 0 && errno == EINTR) continue;
        if (pid < 0) return 0;
        if (pid == child && !WIFSTOPPED(status))
            return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    }
}

/* PID 1 of a sandbox started cold: keeps its capabilities while the command runs
 * (keep_capabilities) and is not dumpable (no process without capabilities in the sandbox's
 * user namespace may read it either way), forks the command's process, which confines itself
 * (confine_child) and runs the command, then reaps until the command exits. Returns the
 * command's exit status; this process's end then kills whatever is left in the sandbox. */
static int run_as_init(int last_cap, void (*confine_child)(void)) {
    keep_capabilities(last_cap);
    check(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "make the sandbox's init non-dumpable", "");
    pid_t child = fork();
    if (child < 0) fail("fork: %s", strerror(errno));
    if (child == 0) {
        confine_child();
        execute();
    }
    return reap_until(child);
}

/* The command's process under bubblewrap's --as-pid-1: bubblewrap set no_new_privs, a new
 * session and the seccomp filter on PID 1 (inherited), and the command's environment and
 * directory; the launcher gave it a fresh session keyring. */
static void confine_under_bwrap(void) {
    set_rlimits();
    drop_held_privileges();
}

/* "--init [--close=FD] [--NAME=SOFT[:HARD]]... -- COMMAND...": PID 1 of a cold bubblewrap
 * sandbox (bwrap --as-pid-1 --cap-add ALL), its limits named as util-linux prlimit names them. */
static void init_under_bwrap(char **args) {
    for (; *args && strcmp(*args, "--"); args++) {
        char *option = *args, *value = strchr(option, '=');
        if (strncmp(option, "--", 2) || !value) fail("unknown --init option %s", option);
        *value++ = '\0';
        if (!strcmp(option, "--close")) {
            close((int)number(value)); /* the descriptor this program was started from */
            continue;
        }
        if (n_rlims >= 8) fail("too many limits");
        char *hard = strchr(value, ':');
        if (hard) *hard++ = '\0';
        rlims[n_rlims].name = option + 2;
        rlims[n_rlims].soft = number(value);
        rlims[n_rlims++].hard = number(hard ? hard : value);
    }
    if (!*args || !args[1]) fail("--init names no command");
    int n = 0;
    for (args++; *args && n < MAX_ITEMS; args++) argv_[n++] = *args;
    argv_[n] = NULL;
    n = 0;
    for (char **e = environ; *e && n < MAX_ITEMS; e++) env_[n++] = *e;
    env_[n] = NULL;
    if (getpid() != 1) fail("--init runs as PID 1 of a sandbox (bwrap --as-pid-1)");
    _exit(run_as_init(last_capability(), confine_under_bwrap));
}

/* ---- the warm sandbox: holding it, entering it ------------------------------------------ */

static void hold(void) {
    int last_cap = last_capability();
    build_root(getpid() == 1);
    drop_privileges(last_cap);
    check(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "make the holder non-dumpable", "");
    if (write(1, "ready\n", 6) != 6) fail("report ready: %s", strerror(errno));
    char byte;
    for (;;) {
        ssize_t got = read(0, &byte, 1);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) _exit(0);
    }
}

static int from_host(const struct op *op) {
    return !strcmp(op->kind, "bind") || !strcmp(op->kind, "ro-bind") ||
           !strcmp(op->kind, "hide-file");
}

/* Clone, in the host's mount namespace, every tree the command binds afresh. */
static void open_sources(void) {
    for (int i = 0; i < n_ops; i++) {
        source_fds[i] = -1;
        if (!from_host(&ops[i])) continue;
        int hide = !strcmp(ops[i].kind, "hide-file");
        const char *source = hide ? "/dev/null" : ops[i].source;
        struct stat st;
        source_dirs[i] = stat(source, &st) == 0 && S_ISDIR(st.st_mode);
        int fd = (int)syscall(SYS_open_tree, AT_FDCWD, source,
                              OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE_);
        if (fd < 0) fail("clone the mount of %s: %s", source, strerror(errno));
        uint64_t attrs = (ops[i].kind[0] == 'b' ? 0 : MOUNT_ATTR_RDONLY_) |
                         (hide || bind_nosuid ? MOUNT_ATTR_NODEV_ : 0) |
                         (bind_nosuid ? MOUNT_ATTR_NOSUID_ : 0);
        /* Private, always: a clone of a shared mount (systemd makes / shared) is a peer of
         * the host's, and whatever is mounted on or below it in the sandbox would be mounted
         * on the host too. */
        struct mount_attr_ attr = {attrs, 0, MS_PRIVATE, 0};
        if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE_, &attr,
                    sizeof attr) != 0)
            fail("make the clone of %s private: %s", source, strerror(errno));
        source_fds[i] = fd;
    }
}

static int open_namespace(const char *name) {
    char path[128];
    snprintf(path, sizeof path, "/proc/%s/ns/%s", holder_pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("open %s: %s", path, strerror(errno));
    return fd;
}

/* Whether the holder is still the process the plan names (a PID may be reused). */
static void check_holder(void) {
    char path[128], buf[4096];
    snprintf(path, sizeof path, "/proc/%s/stat", holder_pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t got = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (got <= 0) fail("the warm sandbox's holder is gone");
    close(fd);
    buf[got] = '\0';
    char *field = strrchr(buf, ')');
    for (int i = 0; field && i < 20; i++) field = strchr(field + 1, ' ');
    if (!field || strncmp(field + 1, holder_start, strlen(holder_start)) ||
        (field[1 + strlen(holder_start)] != ' ' && field[1 + strlen(holder_start)] != '\0'))
        fail("the warm sandbox's holder is gone");
}

static void join_holder(void) {
    int user = open_namespace("user"), mnt = open_namespace("mnt"), uts = open_namespace("uts");
    int netns = join_net ? open_namespace("net") : -1;
    check_holder();
    /* The user namespace last: until then this process keeps the engine's privileges over every
     * namespace the holder is in, whichever user namespace owns it. */
    check(setns(mnt, CLONE_NEWNS), "join the sandbox's mount namespace", "");
    check(setns(uts, CLONE_NEWUTS), "join the sandbox's UTS namespace", "");
    if (netns >= 0) check(setns(netns, CLONE_NEWNET), "join the sandbox's network", "");
    /* No group of the engine's comes along (kept, root's would open group-readable files). */
    check(setgroups(0, NULL), "clear the supplementary groups", "");
    check(setns(user, CLONE_NEWUSER), "join the sandbox's user namespace", "");
    /* Become the holder's uid 0, whichever host user that is: the sandbox user when the holder
     * was started as one (otherwise this process would stay host root for file permissions). */
    check(setresgid(0, 0, 0), "become the sandbox's group", "");
    check(setresuid(0, 0, 0), "become the sandbox's user", "");
    /* A change of user made this process non-dumpable: its /proc entries would be root's of
     * the host, out of the command's reach (as they are not in a cold start). */
    check(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "stay dumpable", "");
    close(user), close(mnt), close(uts);
    if (netns >= 0) close(netns);
    check(unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_NEWPID),
          "unshare the command's namespaces", "");
}

static void apply_fresh(int i) {
    const struct op *op = &ops[i];
    if (source_fds[i] < 0) {
        char dest[4096];
        join(dest, sizeof dest, "", op->target);
        if (!strcmp(op->kind, "proc")) {
            make_dirs(dest);
            if (mount("proc", dest, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
                fail("mount proc on %s: %s", dest, strerror(errno));
            /* The holder's user namespace (bubblewrap's holder cannot set it itself). */
            if (!nested && !strcmp(dest, "/proc"))
                write_file("/proc/sys/user/max_user_namespaces", "0");
        } else if (!strcmp(op->kind, "tmpfs")) {
            tmpfs(dest, "1777", op->size, 0);
        } else if (!strcmp(op->kind, "dir")) {
            make_dirs(dest);
        } else if (!strcmp(op->kind, "symlink")) {
            make_parent(dest);
            check(symlink(op->source, dest), "symlink ", dest);
        } else if (!strcmp(op->kind, "hide-dir")) {
            hide_dir(dest);
        } else if (!strcmp(op->kind, "remount-ro")) { /* a hidden directory with binds in it */
            remount_ro(dest);
        } else if (!strcmp(op->kind, "passed")) {
            make_dirs(dest); /* mounted once the command is known: mount_passed() */
        } else {
            fail("operation '%s' cannot be done afresh in a warm sandbox", op->kind);
        }
        return;
    }
    struct stat st;
    if (lstat(op->target, &st) != 0) {
        if (source_dirs[i]) {
            make_dirs(op->target);
        } else {
            make_parent(op->target);
            int fd = open(op->target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (fd < 0) fail("create %s: %s", op->target, strerror(errno));
            close(fd);
        }
    }
    if (syscall(SYS_move_mount, source_fds[i], "", AT_FDCWD, op->target,
                MOVE_MOUNT_F_EMPTY_PATH) != 0)
        fail("mount %s on %s: %s", op->source, op->target, strerror(errno));
    close(source_fds[i]);
}

static int wait_for(pid_t child) {
    for (;;) {
        int status;
        pid_t pid = waitpid(child, &status, 0);
        if (pid < 0 && errno == EINTR) continue;
        if (pid < 0) return SETUP_FAILED;
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    }
}

/* A sandbox entered ahead of its command: the rest of the plan (limits, seccomp, cwd, what to
 * run and its environment) comes from the launcher's pipe once the command is known, with the
 * command's trees, mounted here; NULL: nothing there (the engine discarded this launcher, or is
 * gone). */
static char *take_rest(size_t *len) {
    if (more_fd < 0) fail("the plan names no command");
    int entered_ops = n_ops, expected = 0;
    for (int i = 0; i < entered_ops; i++) expected += !strcmp(ops[i].kind, "passed");
    char *rest = read_all_fds(more_fd, len, expected > 0);
    more_fd = -1;
    if (*len == 0) return NULL;
    allow_no_command = 0;
    n_rlims = 0; /* the command's own, not those the plan entering ahead named */
    seccomp_hex = "";
    parse_plan(rest, *len);
    if (n_passed != expected)
        fail("%d descriptors came with the command, %d expected", n_passed, expected);
    /* Each in the order of its record, on its mount point (a detached, private clone made by
     * the engine on the host: see idmap.detached_tree). */
    for (int i = 0, k = 0; i < entered_ops; i++) {
        if (strcmp(ops[i].kind, "passed")) continue;
        if (syscall(SYS_move_mount, passed_fds[k], "", AT_FDCWD, ops[i].target,
                    MOVE_MOUNT_F_EMPTY_PATH) != 0)
            fail("mount the command's %s: %s", ops[i].target, strerror(errno));
        close(passed_fds[k++]);
    }
    n_passed = 0;
    return rest;
}

static void await_command(void) {
    size_t len;
    if (!take_rest(&len)) _exit(0);
}

/* The confinement the plan entering ahead named (its rlimit and seccomp records: those of the
 * commands like the last one), which the command's process took before its command came. */
static struct rlimit_setting ahead_rlims[8];
static int n_ahead_rlims;
static const char *ahead_seccomp = "";

/* Whether the command's plan names the confinement taken ahead. */
static int confined_as_named(void) {
    if (n_rlims != n_ahead_rlims || strcmp(seccomp_hex, ahead_seccomp)) return 0;
    for (int i = 0; i < n_rlims; i++)
        if (strcmp(rlims[i].name, ahead_rlims[i].name) || rlims[i].soft != ahead_rlims[i].soft ||
            rlims[i].hard != ahead_rlims[i].hard)
            return 0;
    return 1;
}

static void write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t done = write(fd, data, len);
        if (done < 0 && errno == EINTR) continue;
        if (done < 0) return; /* the command's process is gone: its status says why */
        data += done, len -= (size_t)done;
    }
}

/* Fork the command's process ahead of its command, confined as the plan entering ahead says
 * (limits, a fresh session keyring, no capabilities, no_new_privs, seccomp): this process (PID
 * 1, capable) reads the rest of the plan and mounts the command's trees, then hands the rest
 * on, and the command's process only changes directory and execs. A command whose plan names
 * another confinement gets a process forked and confined afresh instead. Returns the command's
 * process. */
static pid_t confined_ahead(void) {
    int go[2];
    check(pipe2(go, O_CLOEXEC), "make a pipe", "");
    memcpy(ahead_rlims, rlims, sizeof rlims);
    n_ahead_rlims = n_rlims;
    ahead_seccomp = seccomp_hex;
    pid_t child = fork();
    if (child < 0) fail("fork: %s", strerror(errno));
    if (child == 0) {
        close(go[1]);
        close(more_fd);
        set_rlimits();
        fresh_session_keyring();
        drop_held_privileges();
        install_seccomp();
        size_t len;
        char *rest = read_all(go[0], &len);
        if (len == 0) _exit(0); /* nothing to run, or not confined as its command must be */
        n_rlims = 0;
        allow_no_command = 0;
        parse_plan(rest, len);
        check(chdir(cwd), "chdir ", cwd);
        execute();
    }
    close(go[0]);
    close(0);
    signal(SIGPIPE, SIG_IGN); /* a command's process that failed to confine itself exits */
    size_t len;
    char *rest = take_rest(&len);
    if (!rest) _exit(0);
    if (confined_as_named()) {
        write_all(go[1], rest, len);
        close(go[1]);
        return child;
    }
    close(go[1]);
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR) continue;
    pid_t fresh = fork();
    if (fresh < 0) fail("fork: %s", strerror(errno));
    if (fresh == 0) {
        confine();
        execute();
    }
    return fresh;
}

static void enter(void) {
    check(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "die with the engine", "");
    int last_cap = last_capability();
    open_sources();
    join_holder();
    pid_t init = fork();
    if (init < 0) fail("fork: %s", strerror(errno));
    if (init > 0) {
        /* Nothing more to say or report: the command's streams end with the command. */
        for (int fd = 0; fd < 3; fd++) close(fd);
        if (status_fd >= 0) close(status_fd);
        if (more_fd >= 0) close(more_fd); /* its init's */
        _exit(wait_for(init));
    }
    check(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "die with the launcher", "");
    check(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / private", "");
    for (int i = 0; i < n_ops; i++) apply_fresh(i);
    /* Nothing an exec could gain, ahead: the capabilities held still mount what comes with
     * the command, and are dropped by the command's process (confine). */
    keep_capabilities(last_cap);
    pid_t child;
    if (!argv_[0] && *seccomp_hex) {
        child = confined_ahead();
    } else {
        /* The command's process is forked ahead of its command too: it reads the rest of the
         * plan (await_command), mounts the command's trees and confines itself, then execs. */
        child = fork();
        if (child < 0) fail("fork: %s", strerror(errno));
        if (child == 0) {
            if (!argv_[0]) await_command();
            confine();
            execute();
        }
        if (more_fd >= 0) close(more_fd); /* the command's process reads it */
        more_fd = -1;
        close(0);
    }
    /* This process keeps its capabilities (keep_capabilities) while the command runs: the
     * command, holding none, can then neither trace it nor open its descriptors (the status
     * pipe). It keeps the command's stdout and stderr until it has reported: the engine reads
     * their end with the status. */
    int32_t code = reap_until(child);
    /* What the command left dies now, as when this process exits, but before the engine hears
     * of the result: nothing of it outlives the result (not in the holder's network either). */
    kill(-1, SIGKILL);
    while (wait(NULL) > 0 || errno == EINTR) continue;
    /* The engine has the command's status now, not once the namespaces are torn down. */
    if (status_fd >= 0 && write(status_fd, &code, sizeof code) < 0) { /* the engine is gone */ }
    _exit(code);
}

/* ---- the launcher ------------------------------------------------------------------------ */

static void launcher_fail(const char *what, const char *arg) {
    char line[4096];
    int n = snprintf(line, sizeof line, "cleanroom-launcher: %s%s: %s\n", what, arg, strerror(errno));
    if (n > (int)sizeof line - 1) n = sizeof line - 1;
    if (write(2, line, n) < 0) { /* nothing more to say */ }
    _exit(SETUP_FAILED);
}

static void join_cgroup(const char *procs) {
    int fd = open(procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) launcher_fail("cannot join cgroup ", procs);
    close(fd);
}

/* Carry out the orders read (maybe only the first of them: then may_wait): more cgroups,
 * rlimits, descriptors opened from paths, and what to run. */
static void take_orders(char *orders, size_t len, int may_wait) {
    if (len == 0) _exit(0); /* the engine went away before it had a command for us */
    allow_no_command = may_wait;
    parse_plan(orders, len);
    for (int i = 0; i < n_joins; i++) join_cgroup(joins[i]);
    n_joins = 0;
    set_rlimits();
    n_rlims = 0;
    for (int i = 0; i < n_fd_files; i++) {
        int fd = open(fd_files[i].path, O_RDONLY);
        if (fd < 0) launcher_fail("cannot open ", fd_files[i].path);
        if (fd != fd_files[i].number) {
            if (dup2(fd, fd_files[i].number) < 0) launcher_fail("cannot open ", fd_files[i].path);
            close(fd);
        }
    }
    n_fd_files = 0;
}

/* A launcher's orders; where they name no command (a launcher made ahead of it), the rest come
 * from the pipe `more`. The command is this program's --enter (go on here) or any other. */
static void launch_orders(char *orders, size_t len, int more) {
    take_orders(orders, len, more >= 0);
    if (!argv_[0]) {
        char *rest = read_all(more, &len);
        take_orders(rest, len, 0);
    } else {
        more_fd = more; /* a sandbox entered ahead: its init reads the rest of its plan there */
    }
    if (!strcmp(argv_[0], self_path) && argv_[1] && !strcmp(argv_[1], "--enter") && argv_[2] &&
        !argv_[3]) {
        size_t plan_len;
        char *plan = read_all((int)number(argv_[2]), &plan_len);
        parse_plan(plan, plan_len);
        enter();
    }
    execvp(argv_[0], argv_);
    launcher_fail("cannot execute ", argv_[0]);
}

/* ---- the launcher server ----------------------------------------------------------------- */

/* The command's stdin, stdout and stderr, and, as the request's flags say, a pipe the rest of
 * the orders come from (a launcher made ahead of its command) and one its init reports the
 * command's exit status to (a command entering a warm sandbox). */
#define SERVED_FDS 5
#define WITH_MORE 1
#define WITH_STATUS 2
/* The longest request: its flags and orders (the engine sends longer orders no other way). */
#define MAX_REQUEST (1 << 20)

static char request_buf[MAX_REQUEST];

/* One request: its flags, its orders (in request_buf, *len bytes at *orders) and the
 * descriptors the flags call for (-1 for the others). 0: the engine is gone; -1: a bad
 * request. */
static int receive(int sock, int fds[SERVED_FDS], char **orders, size_t *len) {
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * SERVED_FDS)];
    } control;
    struct iovec iov = {request_buf, sizeof request_buf};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t got;
    do got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (got < 0 && errno == EINTR);
    if (got <= 0) return 0;
    unsigned char byte = (unsigned char)request_buf[0];
    *orders = request_buf + 1;
    *len = (size_t)got - 1;
    int want = 3 + !!(byte & WITH_MORE) + !!(byte & WITH_STATUS);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    int ok = c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
             c->cmsg_len == CMSG_LEN(sizeof(int) * want) &&
             !(msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) && !(byte & ~(WITH_MORE | WITH_STATUS));
    for (int i = 0; i < SERVED_FDS; i++) fds[i] = -1;
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *got_fds = (int *)CMSG_DATA(c);
        for (int i = 0; i < n; i++) {
            if (ok && i < 3)
                fds[i] = got_fds[i];
            else if (ok && i == 3 && (byte & WITH_MORE))
                fds[3] = got_fds[i];
            else if (ok)
                fds[4] = got_fds[i];
            else
                close(got_fds[i]);
        }
    }
    return ok ? 1 : -1;
}

static void close_range_(unsigned from, unsigned to) {
    if (syscall(SYS_close_range, from, to, 0) != 0)
        for (unsigned fd = from; fd <= to && fd < 1024; fd++) close((int)fd);
}

/* Close every descriptor from 3 on but a and b (-1: none). */
static void close_all_but(int a, int b) {
    int keep[2] = {a < b ? a : b, a < b ? b : a};
    unsigned from = 3;
    for (int i = 0; i < 2; i++) {
        if (keep[i] < (int)from) continue;
        if (keep[i] > (int)from) close_range_(from, (unsigned)keep[i] - 1);
        from = (unsigned)keep[i] + 1;
    }
    close_range_(from, ~0U);
}

/* In the forked child: become the launcher of the request's command (its own copy of the
 * request's orders). */
static void served(int sock, const int fds[SERVED_FDS], char *orders, size_t len) {
    close(sock);
    if (setsid() < 0) launcher_fail("cannot start a session", "");
    /* Each command's own keyring, as a launcher forked by the engine's spawner thread gets. */
    if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING_, NULL) < 0 && errno != ENOSYS)
        launcher_fail("cannot join a fresh session keyring", "");
    for (int i = 0; i < 3; i++)
        if (dup2(fds[i], i) < 0) launcher_fail("cannot take the command's streams", "");
    /* The two pipes at 3 and 4 (close-on-exec); nothing else of the server's (other requests'
     * descriptors) reaches the command. */
    int kept[2] = {-1, -1};
    for (int i = 0; i < 2; i++)
        if (fds[3 + i] >= 0 && (kept[i] = fcntl(fds[3 + i], F_DUPFD_CLOEXEC, 100)) < 0)
            launcher_fail("cannot take the launcher's pipes", "");
    close_all_but(kept[0], kept[1]);
    int more = -1;
    for (int i = 0; i < 2; i++) {
        if (kept[i] < 0) continue;
        if (dup3(kept[i], 3 + i, O_CLOEXEC) < 0) launcher_fail("cannot take the launcher's pipes", "");
        close(kept[i]);
        if (i == 0) more = 3;
        else status_fd = 4;
    }
    launch_orders(orders, len, more);
}

static void serve(int sock) {
    /* The engine's thread that started this server is the parent of every launcher too
     * (CLONE_PARENT): the engine waits for them as for its own children. */
    check(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "die with the engine", "");
    for (;;) {
        int fds[SERVED_FDS];
        char *orders;
        size_t len;
        int request = receive(sock, fds, &orders, &len);
        if (request == 0) _exit(0);
        int32_t reply = -EINVAL;
        if (request > 0) {
            pid_t pid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
            if (pid == 0) served(sock, fds, orders, len);
            reply = pid > 0 ? pid : -errno;
            for (int i = 0; i < SERVED_FDS; i++)
                if (fds[i] >= 0) close(fds[i]);
        }
        if (send(sock, &reply, sizeof reply, MSG_NOSIGNAL) != sizeof reply) _exit(0);
    }
}

int main(int argc, char **argv) {
    self_path = argv[0];
    if (argc == 3 && !strcmp(argv[1], "--serve")) serve((int)number(argv[2]));
    if (argc >= 2 && !strcmp(argv[1], "--init")) init_under_bwrap(argv + 2);
    const char *mode = argc == 3 ? argv[1] : "";
    if (argc != 2 && !(argc == 3 && (!strcmp(mode, "--hold") || !strcmp(mode, "--enter"))))
        fail("usage: %s [--hold|--enter] PLAN-FD", argv[0]);
    allow_no_command = !strcmp(mode, "--hold");
    size_t len;
    char *plan = read_all((int)number(argv[argc - 1]), &len);
    parse_plan(plan, len);
    if (allow_no_command) hold();
    if (!strcmp(mode, "--enter")) enter();
    int last_cap = last_capability();
    build_root(getpid() == 1);
    if (getpid() == 1) _exit(run_as_init(last_cap, confine));
    /* In the host's PID namespace (a policy sharing it): no init of ours to keep. */
    drop_bounding_set(last_cap);
    confine();
    execute();
}
