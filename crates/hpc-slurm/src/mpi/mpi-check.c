/*
 * hpc-up's MPI check (`hpc-up check mpi`), built into the guest image with `mpicc -O2`.
 *
 * Every rank sends its host name to rank 0, which prints one line per rank; an allreduce
 * of the rank numbers must give n(n-1)/2 on every rank; rank 0 and the first rank on
 * another node then ping-pong a small message (latency: median round trip / 2) and a
 * large one (bandwidth: bytes moved / time). Output, from rank 0 only, one fact a line:
 *
 *   mpi-check 1
 *   library Open MPI v4.1.4, ...
 *   rank 0 of 4 on cn1
 *   allreduce sum=6 expected=6 ok
 *   pingpong 0 cn1 2 cn2
 *   latency-us 123.4
 *   bandwidth-mbs 456.7
 *
 * With every rank on one node: `pingpong none` and no latency or bandwidth line. The node
 * name is the host name up to its first dot; tests may set HPC_UP_MPI_CHECK_NODE to
 * stand for another node.
 * Exit status 1 on a wrong sum (every rank), 2 when the buffer cannot be allocated.
 * Small on purpose: it must finish in seconds under TCG emulation.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NAME_LEN 256
#define LAT_WARMUP 10
#define LAT_ITERS 100
#define BW_BYTES (1 << 20)
#define BW_WARMUP 2
#define BW_ITERS 20

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Round trips of `bytes` between `me` and `peer` (the side with `first` sends first);
 * returns the seconds each took in `times` (NULL: not kept) and their sum. */
static double pingpong(char *buf, int bytes, int iters, int first, int peer, double *times)
{
	double total = 0.0;
	for (int i = 0; i < iters; i++) {
		double t0 = MPI_Wtime();
		if (first) {
			MPI_Send(buf, bytes, MPI_CHAR, peer, 1, MPI_COMM_WORLD);
			MPI_Recv(buf, bytes, MPI_CHAR, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		} else {
			MPI_Recv(buf, bytes, MPI_CHAR, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			MPI_Send(buf, bytes, MPI_CHAR, peer, 1, MPI_COMM_WORLD);
		}
		double t = MPI_Wtime() - t0;
		if (times)
			times[i] = t;
		total += t;
	}
	return total;
}

int main(int argc, char **argv)
{
	int rank, size;
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);

	char name[NAME_LEN];
	memset(name, 0, sizeof name);
	const char *as = getenv("HPC_UP_MPI_CHECK_NODE");
	if (as && *as)
		strncpy(name, as, sizeof name - 1);
	else if (gethostname(name, sizeof name - 1) != 0)
		strcpy(name, "unknown");
	char *dot = strchr(name, '.');
	if (dot)
		*dot = '\0';

	char *names = NULL;
	if (rank == 0) {
		names = calloc((size_t)size, NAME_LEN);
		if (!names)
			MPI_Abort(MPI_COMM_WORLD, 2);
	}
	MPI_Gather(name, NAME_LEN, MPI_CHAR, names, NAME_LEN, MPI_CHAR, 0, MPI_COMM_WORLD);

	long long mine = rank, sum = 0;
	long long expected = (long long)size * (size - 1) / 2;
	MPI_Allreduce(&mine, &sum, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);

	/* Rank 0 picks the first rank on another node; -1: all on one node. */
	int peer = -1;
	if (rank == 0) {
		for (int r = 1; r < size && peer < 0; r++)
			if (strcmp(names + (size_t)r * NAME_LEN, name) != 0)
				peer = r;
		char lib[MPI_MAX_LIBRARY_VERSION_STRING];
		int len = 0;
		MPI_Get_library_version(lib, &len);
		lib[strcspn(lib, "\r\n")] = '\0';
		printf("mpi-check 1\n");
		printf("library %s\n", lib);
		for (int r = 0; r < size; r++)
			printf("rank %d of %d on %s\n", r, size, names + (size_t)r * NAME_LEN);
		printf("allreduce sum=%lld expected=%lld %s\n", sum, expected,
		       sum == expected ? "ok" : "wrong");
		fflush(stdout);
	}
	MPI_Bcast(&peer, 1, MPI_INT, 0, MPI_COMM_WORLD);

	int status = sum == expected ? 0 : 1;
	if (status == 0 && peer > 0 && (rank == 0 || rank == peer)) {
		char *buf = calloc(BW_BYTES, 1);
		double times[LAT_ITERS];
		if (!buf)
			MPI_Abort(MPI_COMM_WORLD, 2);
		int other = rank == 0 ? peer : 0, first = rank == 0;
		pingpong(buf, 8, LAT_WARMUP, first, other, NULL);
		pingpong(buf, 8, LAT_ITERS, first, other, times);
		pingpong(buf, BW_BYTES, BW_WARMUP, first, other, NULL);
		double bw = pingpong(buf, BW_BYTES, BW_ITERS, first, other, NULL);
		if (rank == 0) {
			qsort(times, LAT_ITERS, sizeof times[0], cmp_double);
			double median = (times[LAT_ITERS / 2 - 1] + times[LAT_ITERS / 2]) / 2.0;
			printf("pingpong 0 %s %d %s\n", name, peer, names + (size_t)peer * NAME_LEN);
			printf("latency-us %.1f\n", median / 2.0 * 1e6);
			printf("bandwidth-mbs %.1f\n",
			       bw > 0.0 ? 2.0 * BW_BYTES * BW_ITERS / bw / 1e6 : 0.0);
		}
		free(buf);
	} else if (rank == 0 && status == 0) {
		printf("pingpong none\n");
	}
	if (rank == 0)
		fflush(stdout);
	free(names);
	MPI_Finalize();
	return status;
}
