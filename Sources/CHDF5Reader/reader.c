// CHDF5Reader (see include/CHDF5Reader.h).
#define _GNU_SOURCE
#include "CHDF5Reader.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

// HDF5Kit's reader-process loop (HDF5ReaderProcess.swift, @_cdecl); never returns.
extern void harmose_hdf5_reader_main(int socket);

// Runs before main in every program linking HDF5Kit (harmose, its stage workers, the test bundle,
// the fuzz harness), so the reader process can be this same executable with no entry point of its
// own to find. A process becomes the reader process only when started by
// harmose_hdf5_reader_spawn: the variable set to "3" and descriptor 3 a socket. Default priority,
// so it runs after the Swift runtime's image registration (swiftrt.o, linked first).
__attribute__((constructor)) static void harmose_hdf5_reader_entry(void) {
    const char *value = getenv("HARMOSE_HDF5_READER");
    if (value == NULL || strcmp(value, "3") != 0) return;
    struct stat s;
    if (fstat(HARMOSE_HDF5_READER_SOCKET, &s) != 0 || !S_ISSOCK(s.st_mode)) return;
    unsetenv("HARMOSE_HDF5_READER");
    harmose_hdf5_reader_main(HARMOSE_HDF5_READER_SOCKET);
    _exit(0);
}

pid_t harmose_hdf5_reader_spawn(int socket, char *const envp[]) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) { errno = rc; return -1; }
    rc = posix_spawnattr_init(&attributes);
    if (rc != 0) { posix_spawn_file_actions_destroy(&actions); errno = rc; return -1; }
    // dup2 onto itself (socket == 3) clears close-on-exec (POSIX 2017, glibc ≥ 2.29).
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, socket, HARMOSE_HDF5_READER_SOCKET);
    if (rc == 0) rc = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0) rc = posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, HARMOSE_HDF5_READER_SOCKET + 1);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attributes, &none);
    // Every signal to its default action: an ignored SIGCHLD inherited across exec would make the
    // reader's waitpid fail (children reaped by the kernel), an ignored SIGPIPE hide a dead parent.
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attributes, &all);
    if (rc == 0) rc = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    char *argv[] = {"harmose-hdf5-reader", NULL};
    if (rc == 0) rc = posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (rc != 0) { errno = rc; return -1; }
    return pid;
}

int harmose_hdf5_reader_send_fd(int socket, int fd) {
    char byte = 'R';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union { struct cmsghdr header; char space[CMSG_SPACE(sizeof(int))]; } control;
    memset(&control, 0, sizeof control);
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space, .msg_controllen = sizeof control.space};
    struct cmsghdr *c = CMSG_FIRSTHDR(&message);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    ssize_t n;
    do { n = sendmsg(socket, &message, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -1;
}

int harmose_hdf5_reader_receive_fd(int socket) {
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union { struct cmsghdr header; char space[CMSG_SPACE(sizeof(int))]; } control;
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space, .msg_controllen = sizeof control.space};
    ssize_t n;
    do { n = recvmsg(socket, &message, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n == 0) { errno = 0; return -1; }
    if (n < 0) return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&message);
    if (c == NULL || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)) || byte != 'R') {
        errno = EPROTO;
        return -1;
    }
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

int harmose_hdf5_reader_pidfd(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

pid_t harmose_hdf5_reader_fork(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    return _Fork();
#else
    return fork();
#endif
}

void harmose_hdf5_reader_die_with_parent(void) { prctl(PR_SET_PDEATHSIG, SIGKILL); }

int harmose_hdf5_reader_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int harmose_hdf5_reader_socketpair(int fds[2]) { return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds); }
