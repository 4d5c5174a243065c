// Remote tracebacks: symbolising and formatting a recorded throw's stack (see stacktrace.hpp).
#include "stacktrace.hpp"

#include <cxxabi.h>
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mproc/codec.hpp>
#include <string_view>
#include <typeinfo>
#include <vector>

#if MPROC_HAVE_LIBBACKTRACE
#include <backtrace.h>
#endif

#include "posix/demangle.hpp"

namespace mproc::detail {
namespace {

constexpr std::size_t kMaxTraceLines = 64;
constexpr std::string_view kHeader = "Traceback (most recent call last):\n";

// One frame, innermost first; an inlined call is a frame of its own.
struct Frame {
  std::string function;  // as the symbol or the debug information names it (mangled or not)
  std::string file;      // the source file (with `line`), or the image it is in
  int line = 0;
  std::uintptr_t offset = 0;  // without a name or a line: the address's offset in its image
  std::uintptr_t pc = 0;      // the return address it was found at
};

bool starts_with(const std::string& s, std::string_view prefix) noexcept {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// A frame of namespace mproc: by the function's mangled name (member, const member, local entity
// of one), or, for an inlined call that the debug information names without its scope, by its
// file (mproc's headers).
bool is_mproc(const Frame& f) noexcept {
  const std::string& n = f.function;
  return starts_with(n, "_ZN5mproc") || starts_with(n, "_ZNK5mproc") ||
         starts_with(n, "_ZZN5mproc") || starts_with(n, "_ZZNK5mproc") ||
         f.file.find("/include/mproc/") != std::string::npos;
}

// A frame of the standard library (std::, __gnu_cxx::, the C++ ABI), the same ways.
bool is_std(const Frame& f) noexcept {
  const std::string& n = f.function;
  return starts_with(n, "_ZNSt") || starts_with(n, "_ZNKSt") || starts_with(n, "_ZSt") ||
         starts_with(n, "_ZZNSt") || starts_with(n, "_ZN9__gnu_cxx") ||
         starts_with(n, "_ZNK9__gnu_cxx") || starts_with(n, "__cxa_") ||
         f.file.find("/include/c++/") != std::string::npos ||
         f.file.find("/c++/v1/") != std::string::npos;
}

void cut(std::string& s) {
  if (s.size() > kMaxTraceNameBytes) {
    s.resize(kMaxTraceNameBytes - 3);
    s += "...";
  }
}

// The image that holds `pc` (dladdr), and the name of its exported symbol if any.
void image_of(std::uintptr_t pc, Frame& f) {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(pc), &info) == 0) return;
  if (f.file.empty() && info.dli_fname != nullptr) f.file = info.dli_fname;
  if (f.function.empty() && info.dli_sname != nullptr) f.function = info.dli_sname;
  if (f.function.empty() && f.line == 0)
    f.offset = pc - reinterpret_cast<std::uintptr_t>(info.dli_fbase);
}

#if MPROC_HAVE_LIBBACKTRACE
void ignore_error(void*, const char*, int) {}

// libbacktrace's state for this process: made once, never freed (its memory is mmap'ed and it
// keeps the executable's and the libraries' debug information mapped; no descriptor stays open).
backtrace_state* symbolizer() noexcept {
  static backtrace_state* const state = backtrace_create_state(nullptr, 1, &ignore_error, nullptr);
  return state;
}

struct PcFrames {
  std::vector<Frame>* out;
  bool failed = false;
};

int on_pcinfo(void* data, std::uintptr_t, const char* file, int line, const char* function) {
  auto* p = static_cast<PcFrames*>(data);
  if (file == nullptr && function == nullptr) return 0;  // no debug information here
  try {
    Frame f;
    if (function != nullptr) f.function = function;
    if (file != nullptr) f.file = file;
    f.line = file != nullptr ? line : 0;
    p->out->push_back(std::move(f));
  } catch (...) {
    p->failed = true;
    return 1;
  }
  return 0;
}

void on_syminfo(void* data, std::uintptr_t, const char* symbol, std::uintptr_t, std::uintptr_t) {
  auto* f = static_cast<Frame*>(data);
  if (symbol != nullptr && f->function.empty()) {
    try {
      f->function = symbol;
    } catch (...) {
    }
  }
}
#endif

// The frames at return address `pc` (the call is the instruction before it), innermost first.
void symbolise(std::uintptr_t pc, std::vector<Frame>& out) {
  const std::uintptr_t at = pc - 1;
#if MPROC_HAVE_LIBBACKTRACE
  if (backtrace_state* state = symbolizer()) {
    const std::size_t before = out.size();
    PcFrames p{&out};
    backtrace_pcinfo(state, at, &on_pcinfo, &ignore_error, &p);
    if (p.failed) throw std::bad_alloc();
    if (out.size() != before) {
      for (std::size_t i = before; i < out.size(); ++i)
        if (out[i].file.empty()) image_of(at, out[i]);
      // The debug information names a function of internal linkage without its scope and
      // parameters ("run"); the symbol table has its mangled name, which the frame that is not
      // inlined (the last) takes.
      Frame symbol;
      backtrace_syminfo(state, at, &on_syminfo, &ignore_error, &symbol);
      if (starts_with(symbol.function, "_Z")) out.back().function = std::move(symbol.function);
      return;
    }
    Frame f;
    backtrace_syminfo(state, at, &on_syminfo, &ignore_error, &f);
    image_of(at, f);
    out.push_back(std::move(f));
    return;
  }
#endif
  Frame f;
  image_of(at, f);
  out.push_back(std::move(f));
}

std::string readable(const std::string& function) {
  if (function.empty()) return "??";
  std::string s = starts_with(function, "_Z") ? demangle(function.c_str()) : function;
  cut(s);
  return s;
}

std::string line_of(const Frame& f) {
  std::string file = f.file.empty() ? std::string("??") : f.file;
  cut(file);
  std::string s = "  File \"" + file + "\"";
  if (f.line > 0) s += ", line " + std::to_string(f.line);
  s += ", in " + readable(f.function);
  if (f.function.empty() && f.offset != 0) {  // for addr2line
    char at[32];
    std::snprintf(at, sizeof at, " at +0x%jx", static_cast<std::uintmax_t>(f.offset));
    s += at;
  }
  s += "\n";
  return s;
}

// The cache of the last trace formatted by this thread: a map whose every element throws from the
// same place formats its trace once.
struct Cache {
  ThrowStack stack{};
  std::string text;
  bool valid = false;
};
thread_local Cache t_cache;

bool same(const ThrowStack& a, const ThrowStack& b) noexcept {
  return a.frames == b.frames && a.truncated == b.truncated &&
         std::memcmp(a.pcs, b.pcs, a.frames * sizeof a.pcs[0]) == 0;
}

}  // namespace

std::string format_trace(const ThrowStack& stack) {
  if (stack.frames == 0) return {};
  Cache& cache = t_cache;
  if (cache.valid && same(cache.stack, stack)) return cache.text;

  std::vector<Frame> frames;
  for (std::size_t i = 0; i < stack.frames; ++i) {
    const std::size_t before = frames.size();
    symbolise(stack.pcs[i], frames);
    for (std::size_t k = before; k < frames.size(); ++k) frames[k].pc = stack.pcs[i];
  }
  // The frames from the throw to the boundary: the first frame of mproc after one of the user's.
  std::size_t keep = frames.size();
  bool user = false;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const Frame& f = frames[i];
    if (is_mproc(f)) {
      if (user) {
        keep = i;
        add_stop_address(f.pc);  // later throws under this caller record no more frames
        break;
      }
    } else if (!f.function.empty() && !is_std(f)) {
      user = true;
    }
  }
  const bool below = keep != frames.size() || !stack.truncated;  // the outermost frames are known
  if (user && keep != frames.size()) {  // and the standard library's between them and the boundary
    while (keep > 0 && (frames[keep - 1].function.empty() || is_std(frames[keep - 1]))) --keep;
  }
  // The innermost frames that fit, then in Python's order (most recent call last).
  std::vector<std::string> lines;
  std::size_t bytes = kHeader.size() + 64;  // room for the note on frames left out
  std::size_t n = 0;
  for (; n < keep && lines.size() < kMaxTraceLines; ++n) {
    std::string l = line_of(frames[n]);
    if (bytes + l.size() > kMaxTraceBytes) break;
    bytes += l.size();
    lines.push_back(std::move(l));
  }
  std::string text(kHeader);
  if (n < keep || !below)
    text += "  ... " + (n < keep ? std::to_string(keep - n) + " " : std::string()) +
            "earlier frames left out\n";
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) text += *it;

  cache.stack = stack;
  cache.text = text;
  cache.valid = true;
  return text;
}

bool traces_have_lines() noexcept {
#if MPROC_HAVE_LIBBACKTRACE
  return throw_stacks_recorded() && symbolizer() != nullptr;
#else
  return false;
#endif
}

std::string current_exception_trace() noexcept {
  try {
    const std::type_info* type = abi::__cxa_current_exception_type();
    if (type == nullptr || !throw_stacks_recorded()) return {};
    // The thrown object's address, as __cxa_throw got it: what an exception_ptr holds (its one
    // member, in libstdc++ and libc++ alike).
    static_assert(sizeof(std::exception_ptr) == sizeof(void*));
    const std::exception_ptr current = std::current_exception();
    const void* object = nullptr;
    std::memcpy(&object, static_cast<const void*>(&current), sizeof object);
    ThrowStack stack;
    if (!find_throw_stack(object, type, stack)) return {};
    return format_trace(stack);
  } catch (...) {
    return {};
  }
}

std::string read_trace(Reader& r) {
  const std::size_t n = read_count(r, 1);
  if (n > kMaxTraceBytes)
    throw DecodeError("mproc: a traceback of " + std::to_string(n) + " bytes (at most " +
                      std::to_string(kMaxTraceBytes) + ")");
  std::string s(n, '\0');
  r.read(s.data(), n);
  return s;
}

}  // namespace mproc::detail
