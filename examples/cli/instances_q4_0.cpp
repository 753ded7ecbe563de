// examples/cli/instances_q4_0.cpp - the engine for q4_0 weights with every kernel policy of the build, compiled
// once (cli.hpp declares these instantiations extern everywhere else).
#define EDGELM_CLI_INSTANCES
#include "cli.hpp"

EDGELM_CLI_FOR_KERNELS(EDGELM_CLI_INSTANTIATE, edgelm::q4_0)
