// The run report: reads RUN_DIR/results.json (schema in docs/report.md) and writes
// RUN_DIR/report.html (self-contained: every image embedded as a data: URI, a Content-Security-
// Policy that forbids any network request) and RUN_DIR/report.md (tables; images as relative
// links), both atomically. Figures it draws itself (training curves, per-transform and
// per-corruption bars) go to RUN_DIR/report_files/. Every section is always present; one with no
// data says so. results.json is read, never modified.
#ifndef RCV_REPORT_H
#define RCV_REPORT_H

// -1 with a message naming the file and the JSON path (e.g. "models[1].clean.top1") of the first
// value of the wrong type. Missing images referenced by results.json are not fatal: the report
// shows "image not found: <path>" in their place and *n_missing counts them (may be NULL).
int rcv_report_write(const char *run_dir, int *n_missing);

// Standard base64 (RFC 4648, with padding) of data[0..len): malloc'ed, NUL-terminated.
char *rcv_base64(const unsigned char *data, unsigned long len);

#endif
