/* The few MPI calls the crate makes, behind a C ABI that does not depend on
 * how an MPI library lays out its handles (Open MPI's are pointers,
 * MPICH's integers). Built with the cc crate only with the `mpi` feature
 * (see build.rs); called only from src/mpi/sys.rs, on the one thread that
 * owns MPI in each process.
 *
 * Every function returns an MPI error code (MPI_SUCCESS is 0): errors are
 * returned, not fatal (MPI_ERRORS_RETURN on MPI_COMM_WORLD). */
#include <mpi.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* The message a successful probe matched, for cf_mpi_take to receive.
 * One thread calls these functions, so one pending message is enough. */
static MPI_Message pending = MPI_MESSAGE_NULL;
static int pending_len = 0;

/* The communicator rank 0 and its workers talk over, and how its ranks are
 * numbered: the crate's rank r is `comm`'s rank r - peer_offset.
 * - Started together (mpirun -n N): MPI_COMM_WORLD, offset 0.
 * - Rank 0 that spawned its workers: the intercommunicator to them, whose
 *   remote ranks 0..n-1 are the crate's 1..n: offset 1.
 * - A spawned worker: the intercommunicator to its parent, whose one
 *   remote rank 0 is the crate's rank 0: offset 0 (its own number is its
 *   world rank + 1). */
static MPI_Comm comm = MPI_COMM_NULL;
static int peer_offset = 0;
/* Whether `comm` is an intercommunicator to disconnect before finalising. */
static int connected = 0;

/* *serialized = 1 if MPI may be called from any thread, one at a time
 * (MPI_THREAD_SERIALIZED or more was provided); 0 if only from this one.
 * *spawned = 1 in a worker that rank 0 started with MPI_Comm_spawn: its
 * *rank is then its world rank + 1 and *size its world's + 1, as rank 0
 * numbers them. */
int cf_mpi_init(int *rank, int *size, int *serialized, int *spawned) {
    int argc = 0;
    char **argv = NULL;
    int provided = MPI_THREAD_SINGLE;
    int rc = MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) return rc;
    *serialized = provided >= MPI_THREAD_SERIALIZED;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm parent = MPI_COMM_NULL;
    rc = MPI_Comm_get_parent(&parent);
    if (rc != MPI_SUCCESS) return rc;
    rc = MPI_Comm_rank(MPI_COMM_WORLD, rank);
    if (rc != MPI_SUCCESS) return rc;
    rc = MPI_Comm_size(MPI_COMM_WORLD, size);
    if (rc != MPI_SUCCESS) return rc;
    *spawned = parent != MPI_COMM_NULL;
    if (*spawned) {
        MPI_Comm_set_errhandler(parent, MPI_ERRORS_RETURN);
        comm = parent;
        connected = 1;
        *rank += 1;
        *size += 1;
    } else {
        comm = MPI_COMM_WORLD;
    }
    return MPI_SUCCESS;
}

/* Starts `count` processes of `exe` (no arguments) as workers, and talks
 * to them from now on: they are ranks 1..count. For a process alone in
 * its world (a singleton, or mpirun -n 1). errors[count] gets each
 * process's error code. */
int cf_mpi_spawn(const char *exe, int count, int *errors) {
    if (comm != MPI_COMM_WORLD || connected) return MPI_ERR_OTHER;
    MPI_Comm children = MPI_COMM_NULL;
    int rc = MPI_Comm_spawn(exe, MPI_ARGV_NULL, count, MPI_INFO_NULL, 0, MPI_COMM_SELF,
                            &children, errors);
    if (rc != MPI_SUCCESS) return rc;
    MPI_Comm_set_errhandler(children, MPI_ERRORS_RETURN);
    comm = children;
    peer_offset = 1;
    connected = 1;
    return MPI_SUCCESS;
}

/* How many ranks share this rank's node, and this rank's place among them. */
int cf_mpi_node_ranks(int *count, int *index) {
    MPI_Comm node;
    int rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    if (rc != MPI_SUCCESS) return rc;
    rc = MPI_Comm_size(node, count);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(node, index);
    MPI_Comm_free(&node);
    return rc;
}

/* Starts sending `len` bytes to `dest` with `tag` without waiting
 * (MPI_Isend): two ranks that send each other large messages at once would
 * each wait in a blocking MPI_Send for the other's receive. *request is an
 * opaque handle for cf_mpi_test; the bytes must stay unchanged until it
 * says the send is complete. */
int cf_mpi_isend(const void *bytes, long long len, int dest, int tag, void **request) {
    if (len < 0 || len > INT_MAX) return MPI_ERR_COUNT;
    MPI_Request *handle = malloc(sizeof *handle);
    if (handle == NULL) return MPI_ERR_NO_MEM;
    int rc = MPI_Isend(bytes, (int)len, MPI_BYTE, dest - peer_offset, tag, comm, handle);
    if (rc != MPI_SUCCESS) {
        free(handle);
        return rc;
    }
    *request = handle;
    return MPI_SUCCESS;
}

/* Whether the send behind `request` is complete (*done = 1); a complete
 * request is freed and must not be tested again. */
int cf_mpi_test(void *request, int *done) {
    MPI_Request *handle = request;
    *done = 0;
    int rc = MPI_Test(handle, done, MPI_STATUS_IGNORE);
    if (rc == MPI_SUCCESS && *done) free(handle);
    return rc;
}

/* Looks for a message from `source` (or any, if negative) without waiting.
 * On a match: *found = 1, its source, tag and length; cf_mpi_take must
 * receive it before the next probe. */
int cf_mpi_probe(int source, int *found, int *from, int *tag, long long *len) {
    MPI_Status status;
    *found = 0;
    if (pending != MPI_MESSAGE_NULL) return MPI_ERR_PENDING;
    int rc = MPI_Improbe(source < 0 ? MPI_ANY_SOURCE : source - peer_offset, MPI_ANY_TAG, comm,
                         found, &pending, &status);
    if (rc != MPI_SUCCESS || !*found) return rc;
    int count = 0;
    rc = MPI_Get_count(&status, MPI_BYTE, &count);
    if (rc != MPI_SUCCESS) return rc;
    *from = status.MPI_SOURCE + peer_offset;
    *tag = status.MPI_TAG;
    *len = count;
    pending_len = count;
    return MPI_SUCCESS;
}

/* Receives the message the last probe matched into `bytes` (`len` of room,
 * at least its length). */
int cf_mpi_take(void *bytes, long long len) {
    if (pending == MPI_MESSAGE_NULL) return MPI_ERR_REQUEST;
    if (len < pending_len) return MPI_ERR_TRUNCATE;
    return MPI_Mrecv(bytes, pending_len, MPI_BYTE, &pending, MPI_STATUS_IGNORE);
}

/* Disconnects from the parent or the spawned workers (collective: both
 * sides call it, after the stop exchange), then finalises. */
int cf_mpi_finalize(void) {
    if (connected) {
        int rc = MPI_Comm_disconnect(&comm);
        connected = 0;
        if (rc != MPI_SUCCESS) return rc;
    }
    return MPI_Finalize();
}

void cf_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

/* The text of an MPI error code, NUL-terminated in `text` (at least
 * MPI_MAX_ERROR_STRING + 1 bytes). */
void cf_mpi_error_text(int code, char *text) {
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = 0;
    text[len] = '\0';
}

int cf_mpi_max_error_text(void) { return MPI_MAX_ERROR_STRING; }

/* This node's name, NUL-terminated in `name` (MPI_MAX_PROCESSOR_NAME + 1). */
int cf_mpi_node_name(char *name) {
    int len = 0;
    int rc = MPI_Get_processor_name(name, &len);
    name[rc == MPI_SUCCESS ? len : 0] = '\0';
    return rc;
}

int cf_mpi_max_node_name(void) { return MPI_MAX_PROCESSOR_NAME; }
