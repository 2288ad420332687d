// CMPIShims: MPI's handles and constants that Swift cannot import. OpenMPI defines MPI_COMM_WORLD, MPI_FLOAT,
// MPI_IN_PLACE and the like as casts of addresses of its globals; each function below returns one of them. Every
// MPI call itself is made from Swift (CollectiveMPI/MPICommunicator.swift), through the CMPI module.
#ifndef CMPISHIMS_H
#define CMPISHIMS_H
#include <mpi.h>

static inline MPI_Comm CMPIShims_COMM_WORLD(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm CMPIShims_COMM_NULL(void) { return MPI_COMM_NULL; }
static inline MPI_Info CMPIShims_INFO_NULL(void) { return MPI_INFO_NULL; }
static inline MPI_Errhandler CMPIShims_ERRORS_RETURN(void) { return MPI_ERRORS_RETURN; }
static inline void *CMPIShims_IN_PLACE(void) { return MPI_IN_PLACE; }

static inline MPI_Datatype CMPIShims_FLOAT(void) { return MPI_FLOAT; }
static inline MPI_Datatype CMPIShims_DOUBLE(void) { return MPI_DOUBLE; }
static inline MPI_Datatype CMPIShims_INT64(void) { return MPI_INT64_T; }
static inline MPI_Datatype CMPIShims_INT32(void) { return MPI_INT32_T; }
static inline MPI_Datatype CMPIShims_DATATYPE_NULL(void) { return MPI_DATATYPE_NULL; }

static inline MPI_Op CMPIShims_SUM(void) { return MPI_SUM; }
static inline MPI_Op CMPIShims_MAX(void) { return MPI_MAX; }
static inline MPI_Op CMPIShims_MIN(void) { return MPI_MIN; }
#endif
