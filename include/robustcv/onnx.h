// ONNX export: a zoo model (any graph models.h builds) as an ONNX ModelProto file that
// onnxruntime and every other ONNX runtime loads.
//
// What the file holds:
//   input  "input"  float (N, C, H, W), pixels in [0, 1]: the images `robustcv predict` feeds
//                   the model; N is symbolic (dim_param "N"), C, H, W the model's
//   inside          the model's normalization (Sub mean, Div std), then the network in eval mode:
//                   BatchNormalization with the running statistics, no Dropout
//   output "logits" float (N, n_classes)
//   output "boxes"  float (N, 4), NAME+box models only: the box head's sigmoid (x0, y0, x1, y1) / size
// Weights are initializers under torchvision's parameter names (conv1.weight, ...).
//
// The protobuf is written by the small wire-format writer below (varints, length-delimited
// fields, fixed32): the export needs a handful of fields of seven messages of onnx.proto, and
// writing them takes ~100 lines, where protobuf-c would need generated code from onnx.proto
// checked in or a protoc-c build step, and a runtime library, for no gain.
#ifndef RCV_ONNX_H
#define RCV_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "robustcv/models.h"

// --- protobuf wire format (src/io/onnx_pb.c) ---
// A growing byte buffer holding one message's encoded fields. A nested message is encoded
// into its own buffer, then appended to its parent with rcv_pb_msg (length first).
typedef struct {
    uint8_t *p;
    size_t len, cap;
} rcv_pb;

void rcv_pb_free(rcv_pb *b);
void rcv_pb_varint(rcv_pb *b, uint64_t v);                              // raw varint, no tag
void rcv_pb_int(rcv_pb *b, int field, int64_t v);                       // varint field (int32/int64/enum)
void rcv_pb_f32(rcv_pb *b, int field, float v);                         // fixed32 field (float)
void rcv_pb_bytes(rcv_pb *b, int field, const void *p, size_t n);       // length-delimited field
void rcv_pb_str(rcv_pb *b, int field, const char *s);                   // string field
void rcv_pb_msg(rcv_pb *b, int field, const rcv_pb *sub);               // embedded message
void rcv_pb_packed_i64(rcv_pb *b, int field, const int64_t *v, int n);  // packed repeated int64
void rcv_pb_packed_f32(rcv_pb *b, int field, const float *v, int n);    // packed repeated float

// --- export (src/io/onnx_export.c) ---
#define RCV_ONNX_OPSET_MIN 13 // Resize with an optional roi, Unsqueeze with axes as an input
#define RCV_ONNX_OPSET_MAX 17
#define RCV_ONNX_OPSET_DEFAULT 17

// The encoded ModelProto of m (ir_version 8, opset `opset` of the default domain) in *data
// (malloc'ed, *len bytes). 0, or -1 with a message (opset out of range, an op the exporter
// does not know, a model over protobuf's 2 GiB message limit).
int rcv_onnx_encode(const rcv_model *m, int opset, uint8_t **data, size_t *len);
// rcv_onnx_encode written to `path` atomically (fileio.h). 0, or -1 naming the file.
int rcv_onnx_export(const rcv_model *m, int opset, const char *path);

#endif
