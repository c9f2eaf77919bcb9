// MPI's handles (communicator, datatypes, reduction ops, the null request, MPI_STATUS_IGNORE) are
// macros over OpenMPI's predefined globals that Swift cannot import; expose them as functions.
// Headers: /usr/lib/x86_64-linux-gnu/openmpi/include (pkg-config ompi; Debian libopenmpi-dev).
#pragma once
#include <mpi.h>

static inline MPI_Comm harmose_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype harmose_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype harmose_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype harmose_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype harmose_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Op harmose_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Request harmose_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *harmose_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline int harmose_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
