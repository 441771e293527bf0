#ifndef RECURD_CZEROMQ_SHIM_H
#define RECURD_CZEROMQ_SHIM_H
#include <zmq.h>
#endif
