#ifndef SETPOINT_CPROCESS_H
#define SETPOINT_CPROCESS_H

#include <spawn.h>
#include <sys/types.h>

/// pidfd_open(2): a file descriptor that becomes readable when the process exits (Linux 5.3+).
/// Returns -1 with errno set where unsupported.
int setpoint_pidfd_open(pid_t pid);

/// posix_spawn_file_actions_addchdir_np (glibc 2.29+), which Swift's Glibc module hides.
int setpoint_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path);

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+): the child closes every descriptor
/// from `from` up, so workloads do not inherit the server's sockets and files.
int setpoint_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from);

#endif
