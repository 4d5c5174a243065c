// tests/helpers/heavy_headers_seen.hpp — which of the standard headers that cost every including
// file most of its compile time (<memory>, <atomic>, <functional>, ...; docs/design.md, "Header
// cost") the headers included before this one brought.
//
// Include it right after the mproc headers under test and before anything else (GoogleTest's
// headers bring <memory> and more): `kSeen` records each header's libstdc++ include guard
// (_GLIBCXX_MEMORY for <memory>) at that point. `kCheckable` is false with another standard
// library or with MPROC_STD_LIGHT=0 (the standard headers instead of the shim): skip then.
// Deliberately no include guard of its own and no includes: it is read once per test file.
namespace {

struct Seen {
  const char* header;
  bool included;
};

// What the headers above brought, recorded before anything else is included.
constexpr Seen kSeen[] = {
#ifdef _GLIBCXX_MEMORY
    {"<memory>", true},
#else
    {"<memory>", false},
#endif
#ifdef _GLIBCXX_ATOMIC
    {"<atomic>", true},
#else
    {"<atomic>", false},
#endif
#ifdef _GLIBCXX_FUNCTIONAL
    {"<functional>", true},
#else
    {"<functional>", false},
#endif
#ifdef _GLIBCXX_CONDITION_VARIABLE
    {"<condition_variable>", true},
#else
    {"<condition_variable>", false},
#endif
#ifdef _GLIBCXX_MUTEX
    {"<mutex>", true},
#else
    {"<mutex>", false},
#endif
#ifdef _GLIBCXX_THREAD
    {"<thread>", true},
#else
    {"<thread>", false},
#endif
#ifdef _GLIBCXX_MAP
    {"<map>", true},
#else
    {"<map>", false},
#endif
#ifdef _GLIBCXX_DEQUE
    {"<deque>", true},
#else
    {"<deque>", false},
#endif
#ifdef _GLIBCXX_VARIANT
    {"<variant>", true},
#else
    {"<variant>", false},
#endif
#ifdef _GLIBCXX_OSTREAM
    {"<ostream>", true},
#else
    {"<ostream>", false},
#endif
#ifdef _GLIBCXX_SSTREAM
    {"<sstream>", true},
#else
    {"<sstream>", false},
#endif
#ifdef _GLIBCXX_IOSTREAM
    {"<iostream>", true},
#else
    {"<iostream>", false},
#endif
#ifdef _GLIBCXX_ALGORITHM
    {"<algorithm>", true},
#else
    {"<algorithm>", false},
#endif
#ifdef _GLIBCXX_CHRONO
    {"<chrono>", true},
#else
    {"<chrono>", false},
#endif
#ifdef _GLIBCXX_RANGES
    {"<ranges>", true},
#else
    {"<ranges>", false},
#endif
#ifdef _GLIBCXX_ITERATOR
    {"<iterator>", true},
#else
    {"<iterator>", false},
#endif
};

#if defined(__GLIBCXX__) && MPROC_STD_LIGHT
constexpr bool kCheckable = true;
#else
constexpr bool kCheckable = false;
#endif

}  // namespace
