// main() for the replay build of a fuzz harness: runs LLVMFuzzerTestOneInput over every file
// in the directories (or files) given, in name order, so the seed corpus and every input that
// ever crashed are re-run by ctest under the normal compiler (and under ASan in `make asan`).
// A missing directory is skipped; a crash, hang or sanitizer report fails the test.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzzutil.h"

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (size_t r; (r = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += r;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    int files = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb)) {
            printf("%s: absent, skipped\n", argv[i]);
            continue;
        }
        if (!S_ISDIR(sb.st_mode)) {
            bad |= run_file(argv[i]);
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        char **names = NULL;
        int n = 0;
        for (struct dirent *e; d && (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            names = realloc(names, (size_t)(n + 1) * sizeof *names);
            names[n++] = strdup(e->d_name);
        }
        if (d) closedir(d);
        if (n) qsort(names, (size_t)n, sizeof *names, cmp);
        for (int k = 0; k < n; k++) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], names[k]);
            bad |= run_file(p);
            files++;
            free(names[k]);
        }
        free(names);
        printf("%s: %d inputs\n", argv[i], n);
    }
    printf("replayed %d inputs without a crash\n", files);
    return bad ? 1 : 0;
}
