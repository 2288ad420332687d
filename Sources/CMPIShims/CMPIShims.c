// CMPIShims: thin door from Swift to MPI. No policy here, only macro translation and chunking.
#include "CMPIShims.h"
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <mpi.h>

#define CMPISHIMS_MAX_REQUESTS 256
static MPI_Request requests[CMPISHIMS_MAX_REQUESTS];
static int requestsInUse[CMPISHIMS_MAX_REQUESTS];

static MPI_Datatype datatype(int type) {
    switch (type) {
    case CMPIShims_DOUBLE: return MPI_DOUBLE;
    case CMPIShims_INT64: return MPI_INT64_T;
    default: return MPI_FLOAT;
    }
}

static size_t elementSize(int type) { return type == CMPIShims_FLOAT ? 4 : 8; }

static MPI_Op operation(int op) {
    switch (op) {
    case CMPIShims_MAX: return MPI_MAX;
    case CMPIShims_MIN: return MPI_MIN;
    default: return MPI_SUM;
    }
}

static int threadLevel = MPI_THREAD_SINGLE;
/// The reduction thread's own communicator: its collectives never interleave with the main thread's.
static MPI_Comm workerComm = MPI_COMM_NULL;

/// Whether this job spans several hosts, from what mpirun tells each rank before MPI_Init.
static int several_hosts(void) {
    const char *size = getenv("OMPI_COMM_WORLD_SIZE"), *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    return size && local && atoi(local) < atoi(size);
}

int CMPIShims_init(int reductionThread) {
    // reductionThread: 1 on, 0 off, -1 when the job spans several hosts (where the wire, not the cores, is slow).
    // The reduction thread below calls MPI while the main thread may too: that needs MPI_THREAD_MULTIPLE. Its
    // waits yield the core (unless the user set mpi_yield_when_idle): a thread that spins in a collective while
    // its peer still computes takes the core from this rank's own compute.
    if (reductionThread < 0) reductionThread = several_hosts();
    if (reductionThread) setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    int code = MPI_Init_thread(NULL, NULL, reductionThread ? MPI_THREAD_MULTIPLE : MPI_THREAD_FUNNELED, &threadLevel);
    if (code != MPI_SUCCESS) return code;
    if (reductionThread && threadLevel >= MPI_THREAD_MULTIPLE) {
        code = MPI_Comm_dup(MPI_COMM_WORLD, &workerComm);
        if (code != MPI_SUCCESS) return code;
        MPI_Comm_set_errhandler(workerComm, MPI_ERRORS_RETURN);
    }
    // Errors come back as codes, so Swift can throw them instead of MPI aborting silently.
    return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

int CMPIShims_is_initialized(void) {
    int flag = 0;
    MPI_Initialized(&flag);
    return flag;
}

static void stop_worker(void);

int CMPIShims_finalize(void) {
    stop_worker();
    int finalized = 0;
    MPI_Finalized(&finalized);
    return finalized ? MPI_SUCCESS : MPI_Finalize();
}

int CMPIShims_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
int CMPIShims_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }

int CMPIShims_processor_name(char *name, int capacity) {
    char buffer[MPI_MAX_PROCESSOR_NAME + 1];
    int length = 0;
    int code = MPI_Get_processor_name(buffer, &length);
    if (code != MPI_SUCCESS) return code;
    buffer[length] = 0;
    strncpy(name, buffer, (size_t)capacity - 1);
    name[capacity - 1] = 0;
    return MPI_SUCCESS;
}

void CMPIShims_error_string(int code, char *buffer, int capacity) {
    char text[MPI_MAX_ERROR_STRING + 1];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
    text[length] = 0;
    strncpy(buffer, text, (size_t)capacity - 1);
    buffer[capacity - 1] = 0;
}

/// In-place allreduce on `comm`, in chunks of at most INT_MAX elements.
static int allreduce_on(MPI_Comm comm, void *buffer, int64_t count, int type, int op) {
    char *bytes = (char *)buffer;
    while (count > 0) {
        int chunk = count > INT_MAX ? INT_MAX : (int)count;
        int code = MPI_Allreduce(MPI_IN_PLACE, bytes, chunk, datatype(type), operation(op), comm);
        if (code != MPI_SUCCESS) return code;
        bytes += (size_t)chunk * elementSize(type);
        count -= chunk;
    }
    return MPI_SUCCESS;
}

int CMPIShims_allreduce(void *buffer, int64_t count, int type, int op) {
    return allreduce_on(MPI_COMM_WORLD, buffer, count, type, op);
}

int CMPIShims_broadcast(void *buffer, int64_t count, int type, int root) {
    char *bytes = (char *)buffer;
    while (count > 0) {
        int chunk = count > INT_MAX ? INT_MAX : (int)count;
        int code = MPI_Bcast(bytes, chunk, datatype(type), root, MPI_COMM_WORLD);
        if (code != MPI_SUCCESS) return code;
        bytes += (size_t)chunk * elementSize(type);
        count -= chunk;
    }
    return MPI_SUCCESS;
}

int CMPIShims_allgatherv(const void *send, int64_t sendCount, void *receive,
                         const int64_t *counts, const int64_t *displacements, int type) {
    int size = 0, rank = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int fits = 1;
    for (int r = 0; r < size; r++)
        if (counts[r] > INT_MAX || displacements[r] > INT_MAX) fits = 0;
    char *out = (char *)receive;
    size_t element = elementSize(type);
    if (fits) {
        int intCounts[size], intDisplacements[size];
        for (int r = 0; r < size; r++) {
            intCounts[r] = (int)counts[r];
            intDisplacements[r] = (int)displacements[r];
        }
        memmove(out + (size_t)displacements[rank] * element, send, (size_t)sendCount * element);
        return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, receive, intCounts, intDisplacements,
                              datatype(type), MPI_COMM_WORLD);
    }
    // Too large for int counts: each rank broadcasts its block, in chunks.
    memmove(out + (size_t)displacements[rank] * element, send, (size_t)sendCount * element);
    for (int r = 0; r < size; r++) {
        int code = CMPIShims_broadcast(out + (size_t)displacements[r] * element, counts[r], type, r);
        if (code != MPI_SUCCESS) return code;
    }
    return MPI_SUCCESS;
}

int CMPIShims_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
void CMPIShims_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
double CMPIShims_wtime(void) { return MPI_Wtime(); }

int CMPIShims_iallreduce_sum_f32(float *buffer, int count, int *request) {
    for (int i = 0; i < CMPISHIMS_MAX_REQUESTS; i++) {
        if (!requestsInUse[i]) {
            int code = MPI_Iallreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                                      &requests[i]);
            if (code != MPI_SUCCESS) return code;
            requestsInUse[i] = 1;
            *request = i;
            return MPI_SUCCESS;
        }
    }
    return MPI_ERR_REQUEST;
}

int CMPIShims_test(int request, int *done) {
    int flag = 0;
    int code = MPI_Test(&requests[request], &flag, MPI_STATUS_IGNORE);
    if (code != MPI_SUCCESS) return code;
    *done = flag;
    return MPI_SUCCESS;
}

int CMPIShims_wait(int request) {
    int code = MPI_Wait(&requests[request], MPI_STATUS_IGNORE);
    requestsInUse[request] = 0;
    return code;
}

// MARK: - The reduction thread

// One thread per process (asked for at init) that reduces submitted buckets in submission order, each with a
// blocking MPI_Allreduce on its own communicator (the tuned collectives, which progress themselves), while the
// caller goes on computing.
#define WORKER_QUEUE 256
static struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int started, stopping;
    float *buffers[WORKER_QUEUE];
    int counts[WORKER_QUEUE];
    long submitted, completed;
    int error;
} worker = { .lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER };

static void *worker_main(void *unused) {
    (void)unused;
    pthread_mutex_lock(&worker.lock);
    for (;;) {
        while (!worker.stopping && worker.completed == worker.submitted) pthread_cond_wait(&worker.changed, &worker.lock);
        if (worker.completed == worker.submitted) break;  // stopping, nothing left
        long slot = worker.completed % WORKER_QUEUE;
        float *buffer = worker.buffers[slot];
        int count = worker.counts[slot];
        int failed = worker.error != MPI_SUCCESS;
        pthread_mutex_unlock(&worker.lock);
        int code = failed ? MPI_SUCCESS : MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, workerComm);
        pthread_mutex_lock(&worker.lock);
        if (code != MPI_SUCCESS && worker.error == MPI_SUCCESS) worker.error = code;
        worker.completed += 1;
        pthread_cond_broadcast(&worker.changed);
    }
    pthread_mutex_unlock(&worker.lock);
    return NULL;
}

int CMPIShims_worker_available(void) { return workerComm != MPI_COMM_NULL; }

int CMPIShims_worker_submit(float *buffer, int count) {
    if (workerComm == MPI_COMM_NULL) return MPI_ERR_OTHER;
    pthread_mutex_lock(&worker.lock);
    if (!worker.started) {
        if (pthread_create(&worker.thread, NULL, worker_main, NULL) != 0) {
            pthread_mutex_unlock(&worker.lock);
            return MPI_ERR_OTHER;
        }
        worker.started = 1;
    }
    while (worker.submitted - worker.completed >= WORKER_QUEUE) pthread_cond_wait(&worker.changed, &worker.lock);
    long slot = worker.submitted % WORKER_QUEUE;
    worker.buffers[slot] = buffer;
    worker.counts[slot] = count;
    worker.submitted += 1;
    pthread_cond_broadcast(&worker.changed);
    pthread_mutex_unlock(&worker.lock);
    return MPI_SUCCESS;
}

int CMPIShims_worker_drain(void) {
    pthread_mutex_lock(&worker.lock);
    while (worker.completed != worker.submitted) pthread_cond_wait(&worker.changed, &worker.lock);
    int code = worker.error;
    worker.error = MPI_SUCCESS;
    pthread_mutex_unlock(&worker.lock);
    return code;
}

static void stop_worker(void) {
    pthread_mutex_lock(&worker.lock);
    if (!worker.started) { pthread_mutex_unlock(&worker.lock); return; }
    worker.stopping = 1;
    pthread_cond_broadcast(&worker.changed);
    pthread_mutex_unlock(&worker.lock);
    pthread_join(worker.thread, NULL);
    worker.started = 0;
    worker.stopping = 0;
}

// MARK: - Shared-memory gradient reduction

// When every rank runs on one host, the gradient buffers themselves live in an MPI shared window (one slot per rank,
// each in its own pages), so the backward pass writes them where the other ranks can read them: nothing is copied
// into or out of MPI. Each rank publishes how many buckets it has completed (a counter in its own cache line);
// rank r sums its share of a bucket over every slot, in rank order, as soon as all ranks completed that bucket, and
// writes the sum back into every slot. A second counter per rank says "my shares of this step are written"; once all
// say so, every slot holds the full sum, bitwise the same on every rank.
// On several hosts with the same number of ranks each, the same runs inside each host, and between the host-local
// sum of a share and its writing back, one allreduce of that share among the ranks of the same local rank on every
// host (hierarchical: each host puts one gradient's worth on the wire, split over its ranks, instead of a ring
// through every rank).
#include <sched.h>
#include <stdatomic.h>

#define SHM_LINE 64
#define SHM_HEADER 128  // two cache lines of counters before each slot's floats
#define SHM_SHARE_UNIT 16  // shares are whole cache lines of floats
#define SHM_MAX 8

typedef struct {
    MPI_Win window;
    MPI_Comm cross;  // MPI_COMM_NULL on one host; else this local rank's peers on the other hosts
    int rank, size;
    float **slots;
    _Atomic int64_t **ready, **written;
    int64_t readyCount;  // buckets this rank completed, over all steps
    int64_t stepBase;    // readyCount when this step began
    int64_t steps;
} SharedReduction;

static SharedReduction shmTable[SHM_MAX];
static int shmCount = 0;

/// Spins briefly, then yields: with more ranks than cores the rank being waited for needs this core.
static void shm_wait_all(_Atomic int64_t **counters, int size, int64_t atLeast) {
    for (int q = 0; q < size; q++) {
        int spins = 0;
        while (atomic_load_explicit(counters[q], memory_order_acquire) < atLeast) {
            if (++spins < 2000) {
#if defined(__x86_64__)
                __builtin_ia32_pause();
#endif
            } else {
                sched_yield();
            }
        }
    }
}

/// Whether the user kept MPI off shared memory (`--mca btl tcp,self`, to emulate a network, or `^vader`): then the
/// reduction keeps off it too. mpirun hands --mca settings to each rank as OMPI_MCA_* variables.
static int shared_memory_transport_excluded(void) {
    const char *btl = getenv("OMPI_MCA_btl");
    if (!btl || !*btl) return 0;
    int named = strstr(btl, "vader") != NULL || strstr(btl, "sm") != NULL;
    return btl[0] == '^' ? named : !named;
}

int CMPIShims_shm_create(int64_t count, int hierarchyAllowed, float **slot, int *handle) {
    *handle = -1;
    *slot = NULL;
    if (shared_memory_transport_excluded()) return MPI_SUCCESS;  // the same environment on every rank
    int worldSize = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &worldSize);
    MPI_Comm local;
    int code = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
    if (code != MPI_SUCCESS) return code;
    int localSize = 0, localRank = 0, worldRank = 0;
    MPI_Comm_size(local, &localSize);
    MPI_Comm_rank(local, &localRank);
    MPI_Comm_rank(MPI_COMM_WORLD, &worldRank);
    MPI_Comm cross = MPI_COMM_NULL;
    if (localSize != worldSize) {
        // Several hosts: shares line up across hosts only when every host runs as many ranks; with one rank per
        // host there is nothing to share. Every rank takes the same decision from the world's minimum and maximum.
        int sizes[2] = { -localSize, localSize };
        code = MPI_Allreduce(MPI_IN_PLACE, sizes, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (code != MPI_SUCCESS) { MPI_Comm_free(&local); return code; }
        if (-sizes[0] != sizes[1] || localSize < 2 || !hierarchyAllowed) {
            MPI_Comm_free(&local);
            return MPI_SUCCESS;
        }
        code = MPI_Comm_split(MPI_COMM_WORLD, localRank, worldRank, &cross);
        if (code != MPI_SUCCESS) { MPI_Comm_free(&local); return code; }
        MPI_Comm_set_errhandler(cross, MPI_ERRORS_RETURN);
    }
    if (shmCount == SHM_MAX) {  // the same count on every rank
        MPI_Comm_free(&local);
        if (cross != MPI_COMM_NULL) MPI_Comm_free(&cross);
        return MPI_SUCCESS;
    }
    MPI_Comm_set_errhandler(local, MPI_ERRORS_RETURN);
    SharedReduction *s = &shmTable[shmCount];
    s->cross = cross;
    s->rank = localRank;
    s->size = localSize;
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    char *mine = NULL;
    // Whole cache lines per slot: should MPI place the segments back to back, every header stays aligned.
    MPI_Aint bytes = SHM_HEADER + ((MPI_Aint)count * (MPI_Aint)sizeof(float) + SHM_LINE - 1) / SHM_LINE * SHM_LINE;
    code = MPI_Win_allocate_shared(bytes, 1, info, local, &mine, &s->window);
    MPI_Info_free(&info);
    if (code != MPI_SUCCESS) { MPI_Comm_free(&local); return code; }
    memset(mine, 0, (size_t)bytes);
    s->slots = calloc((size_t)s->size, sizeof(float *));
    s->ready = calloc((size_t)s->size, sizeof(void *));
    s->written = calloc((size_t)s->size, sizeof(void *));
    for (int q = 0; q < s->size; q++) {
        MPI_Aint qBytes = 0;
        int unit = 0;
        char *base = NULL;
        code = MPI_Win_shared_query(s->window, q, &qBytes, &unit, &base);
        if (code != MPI_SUCCESS) return code;
        s->ready[q] = (_Atomic int64_t *)base;
        s->written[q] = (_Atomic int64_t *)(base + SHM_LINE);
        s->slots[q] = (float *)(base + SHM_HEADER);
    }
    s->readyCount = s->stepBase = s->steps = 0;
    code = MPI_Barrier(local);  // every header zeroed before anyone reads one
    if (code != MPI_SUCCESS) return code;
    *slot = s->slots[s->rank];
    *handle = shmCount++;
    return MPI_SUCCESS;
}

void CMPIShims_shm_bucket_ready(int handle) {
    SharedReduction *s = &shmTable[handle];
    s->readyCount += 1;
    atomic_store_explicit(s->ready[s->rank], s->readyCount, memory_order_release);
}

int CMPIShims_shm_hosts(int handle) {
    int hosts = 1;
    if (shmTable[handle].cross != MPI_COMM_NULL) MPI_Comm_size(shmTable[handle].cross, &hosts);
    return hosts;
}

int CMPIShims_shm_reduce_bucket(int handle, int64_t offset, int64_t count, int64_t bucket) {
    SharedReduction *s = &shmTable[handle];
    shm_wait_all(s->ready, s->size, s->stepBase + bucket + 1);
    // This rank's share: a contiguous run of whole cache-line units of the bucket.
    int64_t units = (count + SHM_SHARE_UNIT - 1) / SHM_SHARE_UNIT;
    int64_t lo = units * s->rank / s->size * SHM_SHARE_UNIT, hi = units * (s->rank + 1) / s->size * SHM_SHARE_UNIT;
    if (hi > count) hi = count;
    enum { BLOCK = 1024 };
    float sum[BLOCK];
    int hierarchical = s->cross != MPI_COMM_NULL;
    float *own = s->slots[s->rank] + offset;
    for (int64_t start = lo; start < hi; start += BLOCK) {
        int64_t n = hi - start < BLOCK ? hi - start : BLOCK;
        const float *first = s->slots[0] + offset + start;
        for (int64_t i = 0; i < n; i++) sum[i] = first[i];
        for (int q = 1; q < s->size; q++) {
            const float *other = s->slots[q] + offset + start;
            for (int64_t i = 0; i < n; i++) sum[i] += other[i];
        }
        if (hierarchical) {
            memcpy(own + start, sum, (size_t)n * sizeof(float));  // the host's sum, to go between hosts first
        } else {
            for (int q = 0; q < s->size; q++) memcpy(s->slots[q] + offset + start, sum, (size_t)n * sizeof(float));
        }
    }
    if (hierarchical && hi > lo) {  // the same share bounds on every host, so all of `cross` calls or none does
        int code = allreduce_on(s->cross, own + lo, hi - lo, CMPIShims_FLOAT, CMPIShims_SUM);
        if (code != MPI_SUCCESS) return code;
        for (int q = 0; q < s->size; q++)
            if (q != s->rank) memcpy(s->slots[q] + offset + lo, own + lo, (size_t)(hi - lo) * sizeof(float));
    }
    return MPI_SUCCESS;
}

void CMPIShims_shm_end_step(int handle, int64_t buckets) {
    SharedReduction *s = &shmTable[handle];
    s->steps += 1;
    atomic_store_explicit(s->written[s->rank], s->steps, memory_order_release);
    shm_wait_all(s->written, s->size, s->steps);
    s->stepBase += buckets;
}
