// libFuzzer target: decodes arbitrary bytes as one of the built-in codec's types
// (codec_fuzz_types.hpp; the first byte picks the type and the size of the windows the bytes stream
// through).
//
// The properties are those of mproc/testing/codec_fuzz.hpp, the harness any codec can be plugged
// into (tests/fuzz/custom_codec_fuzz.cpp plugs in a user's codec). Decoding may only ever throw
// mproc::DecodeError. A crash, a sanitizer report, any other exception, or a broken property is a
// finding, printed as "mproc codec fuzz: type N (name), window W: <property>" before an abort:
//   * decoding through small windows (1-8 bytes, from the first byte) gives the same outcome as
//     decoding the whole buffer;
//   * decoding through the same windows from a Reader told that the message holds 2^40 bytes more
//     than the input (a sender that announces more than it sends; its refill throws once the
//     input is spent, as a Connection throws EOFError) gives the same outcome too, and no single
//     allocation it makes exceeds 1 MiB + 1024 bytes per input byte (the growth logic of the
//     codec's block reads and reservations follows the bytes that arrived, never the announced
//     total; checked through AddressSanitizer's malloc hook);
//   * a decoded value re-encodes to exactly the number of bytes it was decoded from, at least its
//     type's min_size;
//   * the re-encoding decodes again, to the same bytes (or, for types listed as by_value<T>, with
//     unordered containers, to an equal value); for the other types it equals the input bytes;
//   * from_bytes rejects the input if bytes remain after the value, with "trailing bytes";
//   * a type with the bitwise hint decodes any sizeof(T) bytes and encodes to its object bytes.
#include <mproc/testing/codec_fuzz.hpp>

#include "codec_fuzz_types.hpp"

MPROC_CODEC_FUZZ_TARGET(codec_fuzz::Types)
