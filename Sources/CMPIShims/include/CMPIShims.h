// CMPIShims: the only C code that touches MPI's macros (MPI_COMM_WORLD, MPI_FLOAT, MPI_IN_PLACE).
// Plain functions over plain C types; every function returns an MPI error code (MPI_SUCCESS = 0).
#ifndef CMPISHIMS_H
#define CMPISHIMS_H
#include <stddef.h>
#include <stdint.h>

enum { CMPIShims_FLOAT = 0, CMPIShims_DOUBLE = 1, CMPIShims_INT64 = 2 };
enum { CMPIShims_SUM = 0, CMPIShims_MAX = 1, CMPIShims_MIN = 2 };

/// Initialises MPI; with reductionThread (1; or -1: when the job spans several hosts), at MPI_THREAD_MULTIPLE with
/// a communicator for the reduction thread.
int CMPIShims_init(int reductionThread);
int CMPIShims_is_initialized(void);
int CMPIShims_finalize(void);
int CMPIShims_rank(int *rank);
int CMPIShims_size(int *size);
int CMPIShims_processor_name(char *name, int capacity);
/// Writes MPI's own description of `code` into `buffer` (NUL-terminated).
void CMPIShims_error_string(int code, char *buffer, int capacity);

/// In-place allreduce over MPI_COMM_WORLD; counts above INT_MAX are sent in chunks.
int CMPIShims_allreduce(void *buffer, int64_t count, int type, int op);
/// Gathers `send` (sendCount elements) from every rank into `receive` at displacements[r], counts[r].
int CMPIShims_allgatherv(const void *send, int64_t sendCount, void *receive,
                         const int64_t *counts, const int64_t *displacements, int type);
int CMPIShims_broadcast(void *buffer, int64_t count, int type, int root);
int CMPIShims_barrier(void);
void CMPIShims_abort(int code);
double CMPIShims_wtime(void);

/// Nonblocking in-place allreduce (SUM over floats). Returns a handle >= 0 in *request.
int CMPIShims_iallreduce_sum_f32(float *buffer, int count, int *request);
/// Drives the request forward; *done becomes 1 when it completed. The handle stays held until `wait`.
int CMPIShims_test(int request, int *done);
int CMPIShims_wait(int request);

/// 1 when the reduction thread can be used (asked for at init and MPI granted MPI_THREAD_MULTIPLE).
int CMPIShims_worker_available(void);
/// Queues an in-place SUM allreduce of `count` floats; the thread reduces queued buffers in order. The buffer must
/// not be touched until `drain` returns.
int CMPIShims_worker_submit(float *buffer, int count);
/// Waits until every queued buffer is reduced; returns the first error among them.
int CMPIShims_worker_drain(void);

/// Shared-memory gradient reduction, when every rank of the job runs on one host, or (with hierarchyAllowed) on
/// several hosts with the same number (>= 2) of ranks each; else *handle stays -1. Collective: allocates a shared
/// window with one slot of `count` floats per rank of a host; *slot is this rank's (zeroed), to hold its gradients.
/// Per step: `bucket_ready` after each completed bucket (the same sequence on every rank), then for each of those
/// buckets in order `reduce_bucket` (sums this rank's share of it over its host's slots once they all completed it,
/// allreduces that share with the same share of the other hosts, and writes the sum into every slot of the host),
/// then `end_step` (returns once every slot holds every share's sum).
int CMPIShims_shm_create(int64_t count, int hierarchyAllowed, float **slot, int *handle);
/// How many hosts take part (1 on one host).
int CMPIShims_shm_hosts(int handle);
void CMPIShims_shm_bucket_ready(int handle);
int CMPIShims_shm_reduce_bucket(int handle, int64_t offset, int64_t count, int64_t bucket);
void CMPIShims_shm_end_step(int handle, int64_t buckets);
#endif
