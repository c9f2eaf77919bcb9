// HDF5's native type ids and access flags are macros that Swift cannot import; expose them as
// functions. Headers: /usr/include/hdf5/serial (pkg-config hdf5).
#pragma once
#include <hdf5.h>

static inline hid_t harmose_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t harmose_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t harmose_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t harmose_h5t_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t harmose_h5t_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t harmose_h5t_c_s1(void) { return H5T_C_S1; }
static inline unsigned harmose_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned harmose_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned harmose_h5f_acc_rdwr(void) { return H5F_ACC_RDWR; }
static inline hid_t harmose_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t harmose_h5s_all(void) { return H5S_ALL; }
static inline hid_t harmose_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t harmose_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline size_t harmose_h5t_variable(void) { return H5T_VARIABLE; }
static inline hid_t harmose_h5e_default(void) { return H5E_DEFAULT; }
static inline hid_t harmose_h5p_link_create(void) { return H5P_LINK_CREATE; }
static inline hid_t harmose_h5p_group_create(void) { return H5P_GROUP_CREATE; }
static inline hid_t harmose_h5p_file_create(void) { return H5P_FILE_CREATE; }
static inline hsize_t harmose_h5s_unlimited(void) { return H5S_UNLIMITED; }

// fork() for HDF5Snapshot (Swift does not import it everywhere), and the wait-status decoding
// macros Swift cannot import.
#include <unistd.h>
#include <sys/wait.h>
static inline pid_t harmose_fork(void) { return fork(); }
static inline int harmose_wifsignaled(int status) { return WIFSIGNALED(status); }
static inline int harmose_wtermsig(int status) { return WTERMSIG(status); }
static inline int harmose_wifexited(int status) { return WIFEXITED(status); }
static inline int harmose_wexitstatus(int status) { return WEXITSTATUS(status); }
#include <signal.h>
/// Default actions for the crash signals: a forked HDF5 reader must die by its signal.
static inline void harmose_default_crash_signals(void) {
    int signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP};
    for (unsigned k = 0; k < sizeof signals / sizeof signals[0]; k++) signal(signals[k], SIG_DFL);
}
/// How many files libhdf5 has open in this process, and their ids (HDF5Snapshot: files this
/// process is writing are snapshotted from its own library state).
static inline ssize_t harmose_h5f_open_file_count(void) { return H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_FILE); }
static inline ssize_t harmose_h5f_open_file_ids(size_t n, hid_t *ids) { return H5Fget_obj_ids((hid_t)H5F_OBJ_ALL, H5F_OBJ_FILE, n, ids); }
