// libhdf5's own floor for reading a file of many small datasets (a DeepH legacy overlaps.h5 /
// hamiltonians.h5, one dataset per block): one H5Literate pass over the root group, then H5Dopen2 +
// H5Dread of every dataset, in process CPU seconds. With a member count M as the second argument it
// also times listing the first M names with H5Lget_name_by_idx, as HDF5Kit did before: each call
// walks the symbol-table B-tree from its start, so that listing is quadratic.
// Build and run (BENCHMARKS.md, "Beside DeepH-E3"):
//   gcc -O2 tools/bench/hdf5_floor.c -o /tmp/hdf5_floor $(pkg-config --cflags --libs hdf5)
//   /tmp/hdf5_floor FOLDER/overlaps.h5 [M]
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static char **names;
static size_t count, capacity;

static herr_t collect(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    (void)group; (void)info; (void)data;
    if (count == capacity) {
        capacity = capacity ? 2 * capacity : 1024;
        names = realloc(names, capacity * sizeof *names);
    }
    names[count++] = strdup(name);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s FILE.h5 [M]\n", argv[0]); return 2; }
    double t0 = cpu_seconds();
    hid_t file = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return 1;
    hsize_t position = 0;
    H5Literate(file, H5_INDEX_NAME, H5_ITER_INC, &position, collect, NULL);
    double t1 = cpu_seconds(), checksum = 0;
    static double buffer[1 << 16];
    for (size_t k = 0; k < count; k++) {
        hid_t d = H5Dopen2(file, names[k], H5P_DEFAULT);
        hid_t space = H5Dget_space(d);
        if (H5Sget_simple_extent_npoints(space) <= (1 << 16)) {
            H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer);
            checksum += buffer[0];
        }
        H5Sclose(space);
        H5Dclose(d);
    }
    double t2 = cpu_seconds();
    printf("datasets %zu  list %.3f s  open+read %.3f s  per dataset %.1f us  (checksum %g)\n",
           count, t1 - t0, t2 - t1, 1e6 * (t2 - t0) / count, checksum);
    if (argc > 2) {
        long m = atol(argv[2]);
        char name[256];
        double t3 = cpu_seconds();
        for (long k = 0; k < m; k++) {
            H5Lget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, k, NULL, 0, H5P_DEFAULT);
            H5Lget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, k, name, sizeof name, H5P_DEFAULT);
        }
        printf("H5Lget_name_by_idx listing of the first %ld members: %.3f s\n", m, cpu_seconds() - t3);
    }
    H5Fclose(file);
    return 0;
}
