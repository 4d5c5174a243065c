// mproc/export.hpp — the symbol-visibility macro of the public API.
//
// The library is compiled with hidden visibility; everything a user may call is marked `MPROC_API`.
#pragma once

#define MPROC_API __attribute__((visibility("default")))
