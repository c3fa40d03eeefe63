// Parameter initialisers with PyTorch's distributions (torch.nn.init), drawing
// from rcv_rng. Values are not PyTorch's bit for bit (another generator), but
// each follows the same law with the same fans and gains, so a model trains as
// its PyTorch twin does.
//
// `p` is an index into graph->param_info (rcv_graph_find_param). Every function
// seals the graph's parameter storage first (rcv_graph_seal_params), so they
// can be called right after building.
//
// Reproducibility: rcv_init_default draws each parameter from its own stream,
// rcv_init_param_rng(root, g, p), a fork of the root keyed by the parameter's
// name. A parameter's initial values therefore depend only on (seed, name,
// shape, law): adding a layer or an override elsewhere does not change them.
#ifndef RCV_INIT_H
#define RCV_INIT_H

#include <stdint.h>

#include "robustcv/graph.h"
#include "robustcv/rng.h"

typedef enum { RCV_FAN_IN = 0, RCV_FAN_OUT = 1 } rcv_fan_mode;
typedef enum {
    RCV_NL_LINEAR = 0, // also conv / identity: gain 1
    RCV_NL_SIGMOID,    // gain 1
    RCV_NL_TANH,       // gain 5/3
    RCV_NL_RELU,       // gain sqrt(2)
    RCV_NL_LEAKY_RELU, // gain sqrt(2 / (1 + a^2)), a = negative slope
} rcv_nonlinearity;

// torch.nn.init.calculate_gain(nl, a).
float rcv_init_gain(rcv_nonlinearity nl, float a);
// torch.nn.init._calculate_fan_in_and_fan_out: for a (out, in, k...) weight,
// fan_in = in * prod(k), fan_out = out * prod(k); a 1-d tensor has fan_in = fan_out = its size.
void rcv_init_fans(const rcv_param *p, int64_t *fan_in, int64_t *fan_out);

// The stream rcv_init_default uses for parameter p: root forked by a hash of p's name.
rcv_rng rcv_init_param_rng(const rcv_rng *root, const rcv_graph *g, int p);

// nn.init.constant_ (I64 buffers such as num_batches_tracked get (int64_t)v).
void rcv_init_constant(rcv_graph *g, int p, float v);
// nn.init.uniform_(lo, hi) and normal_(mean, std).
void rcv_init_uniform(rcv_graph *g, int p, rcv_rng *r, float lo, float hi);
void rcv_init_normal(rcv_graph *g, int p, rcv_rng *r, float mean, float std);
// nn.init.kaiming_uniform_(a, mode, nonlinearity): U(-b, b), b = gain * sqrt(3 / fan).
// With a = sqrt(5), FAN_IN, LEAKY_RELU this is nn.Conv2d / nn.Linear's default
// weight law, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
void rcv_init_kaiming_uniform(rcv_graph *g, int p, rcv_rng *r, float a, rcv_fan_mode mode, rcv_nonlinearity nl);
// nn.init.kaiming_normal_(a, mode, nonlinearity): N(0, gain / sqrt(fan)).
// torchvision's ResNet convs: a = 0, FAN_OUT, RELU.
void rcv_init_kaiming_normal(rcv_graph *g, int p, rcv_rng *r, float a, rcv_fan_mode mode, rcv_nonlinearity nl);
// nn.init.xavier_uniform_(gain): U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out));
// xavier_normal_(gain): N(0, gain * sqrt(2 / (fan_in + fan_out))).
void rcv_init_xavier_uniform(rcv_graph *g, int p, rcv_rng *r, float gain);
void rcv_init_xavier_normal(rcv_graph *g, int p, rcv_rng *r, float gain);
// The bias law of nn.Conv2d / nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in taken
// from the weight of the same node.
void rcv_init_bias_default(rcv_graph *g, int bias, int weight, rcv_rng *r);

// PyTorch's reset_parameters for every parameter and buffer of the graph, per its node's op:
//   conv2d, linear: weight kaiming_uniform_(a=sqrt(5)), bias U(+-1/sqrt(fan_in));
//   batchnorm2d:    weight 1, bias 0, running_mean 0, running_var 1, num_batches_tracked 0.
// -1 with a message if a node with parameters has an op with no known default.
int rcv_init_default(rcv_graph *g, const rcv_rng *root);

#endif
