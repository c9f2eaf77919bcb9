// CHDF5Reader: the system-call side of HDF5Kit's reader process (HDF5ReaderProcess.swift) — what
// Swift cannot call or import: starting this executable again as the reader process, passing a
// pipe's descriptor over a socket (SCM_RIGHTS), pidfd_open, prctl, and the constructor that turns
// a process started that way into the reader process before main runs.
#pragma once
#include <sys/types.h>

/// The descriptor number of the reader process's socket to its parent.
#define HARMOSE_HDF5_READER_SOCKET 3

/// Starts this executable (/proc/self/exe) as an HDF5 reader process talking over `socket`
/// (which becomes its descriptor 3; stdin and stdout /dev/null, stderr kept, nothing else
/// inherited, default signal dispositions and an empty signal mask). `envp` must hold
/// HARMOSE_HDF5_READER=3. Returns the pid, or -1 with errno set.
pid_t harmose_hdf5_reader_spawn(int socket, char *const envp[]);

/// Sends one byte and the descriptor `fd` over the Unix socket `socket` (never raises SIGPIPE).
/// 0, or -1 with errno set.
int harmose_hdf5_reader_send_fd(int socket, int fd);

/// Receives one byte and a descriptor sent by `harmose_hdf5_reader_send_fd` (close-on-exec).
/// The descriptor; -1 with errno 0 at end of file (the parent is gone), -1 with errno on errors.
int harmose_hdf5_reader_receive_fd(int socket);

/// A pidfd for the child `pid` (readable when it has exited), or -1 where the kernel has none.
int harmose_hdf5_reader_pidfd(pid_t pid);

/// fork for the reader process, which has one thread: glibc's _Fork (2.34+), which runs no
/// pthread_atfork handlers. Those exist to make locks that other threads might hold consistent in
/// the child; with no other thread there is none, and skipping them saves most of a fork's cost
/// in an AddressSanitizer build (its handlers lock and unlock every bucket of its stack depot).
pid_t harmose_hdf5_reader_fork(void);

/// In a child forked by the reader process: SIGKILL when the reader process dies.
void harmose_hdf5_reader_die_with_parent(void);

/// pipe2 and socketpair (AF_UNIX, SOCK_STREAM) with close-on-exec set atomically, so that no
/// program started meanwhile by another thread inherits them. 0, or -1 with errno set.
int harmose_hdf5_reader_pipe(int fds[2]);
int harmose_hdf5_reader_socketpair(int fds[2]);
