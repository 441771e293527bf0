#ifndef RECURD_CZLIB_SHIM_H
#define RECURD_CZLIB_SHIM_H
#include <zlib.h>
#endif
