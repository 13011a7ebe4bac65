/**
 * @file tstream.h
 * @brief libtstream: Tornado's ioloop + iostream model for C, on libev.
 *
 * The one header a program includes. It pulls in no OpenSSL header: a
 * program that makes TLS contexts or TLS streams also includes tstream/ssl.h.
 * Link with `pkg-config --libs libtstream`
 * or CMake's `tstream::tstream`.
 */
#ifndef TSTREAM_H
#define TSTREAM_H

#include "tstream/common.h"
#include "tstream/version.h"
#include "tstream/ioloop.h"
#include "tstream/future.h"
#include "tstream/iostream.h"
#include "tstream/netutil.h"
#include "tstream/process.h"
#include "tstream/tcpserver.h"
#include "tstream/tcpclient.h"

#endif /* TSTREAM_H */
