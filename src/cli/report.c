// robustcv report RUN_DIR: results.json -> report.html + report.md (see docs/report.md).
#include <stdio.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "robustcv/error.h"
#include "robustcv/report.h"

int cli_report(int argc, char **argv) {
    rcv_opt opts[] = {{NULL, NULL, NULL, NULL}};
    const char *pos[1];
    int npos;
    int rc = rcv_args_parse(argc, argv, opts, "report", "RUN_DIR   (reads RUN_DIR/results.json; schema: docs/report.md)",
                            pos, &npos, 1);
    if (rc) return rc == 1 ? 0 : 2;
    if (npos != 1) {
        fprintf(stderr, "robustcv report: usage: robustcv report RUN_DIR\n");
        return 2;
    }
    int missing = 0;
    if (rcv_report_write(pos[0], &missing)) {
        fprintf(stderr, "robustcv report: %s\n", rcv_error());
        return 1;
    }
    printf("wrote %s/report.html and %s/report.md%s\n", pos[0], pos[0],
           missing ? " (some images or logs were missing: see the warnings)" : "");
    return 0;
}
