// mproc/partial.hpp — what a callable must be to run in another process, and `mproc::partial`, the
// way to bind data to one.
//
// A Pool task never ships code: it ships a callable *object* (its bytes, or its codec encoding)
// and the address of a function instantiated for its type, which means the same thing in a
// worker forked from the same program. So a callable can travel when its state can:
//
//   * trivially copyable: functions, function pointers, lambdas without captures, and lambdas or
//     function objects whose captures/members are trivially copyable (numbers, enums, arrays of
//     them, pointers to state that existed before the Pool was created) — copied byte for byte;
//   * a function object with a `serialize(Archive&)` (see mproc/codec.hpp) and a default
//     constructor — encoded with the codec;
//   * `mproc::partial(f, args...)` where `f` travels and every `args` is encodable by the codec —
//     Python's `functools.partial`.
//
// A lambda that captures a `std::string`, a `std::vector` or any other owning type cannot travel:
// C++ offers no way to enumerate a lambda's captures, so nothing could encode them. Bind such data
// with `partial` instead (Python code does the same: a lambda cannot be pickled, a partial can):
//
//   std::string prefix = "item ";
//   auto label = [](const std::string& p, int x) { return p + std::to_string(x); };
//   pool.map(mproc::partial(label, prefix), xs);      // label(prefix, x) for each x
//
// Anything else (a `std::function`, a capturing lambda of owning types) is a compile-time error
// naming these three forms.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <mproc/byte_stream.hpp>
#include <mproc/codec.hpp>
#include <mproc/detail/std_light.hpp>  // detail::invoke
#include <mproc/detail/travel.hpp>
#include <tuple>
#include <type_traits>
#include <utility>

namespace mproc {

// A callable with leading arguments bound: `Partial(f, {a, b})(x)` calls `f(a, b, x)`. The bound
// arguments are passed as const lvalues (a parameter taking a non-const reference cannot bind
// them). Travels to a worker when `F` does and every bound argument is encodable.
// Mirrors functools.partial(func, *args).
template <class F, class... Bound>
class Partial {
 public:
  Partial(F f, std::tuple<Bound...> bound) : f_(std::move(f)), bound_(std::move(bound)) {}

  template <class... Rest>
    requires std::is_invocable_v<const F&, const Bound&..., Rest...>
  decltype(auto) operator()(Rest&&... rest) const {
    return std::apply(
        [&](const Bound&... b) -> decltype(auto) {
          return detail::invoke(f_, b..., std::forward<Rest>(rest)...);
        },
        bound_);
  }

  // The wrapped callable and the bound arguments. Mirror partial.func and partial.args.
  [[nodiscard]] const F& func() const noexcept { return f_; }
  [[nodiscard]] const std::tuple<Bound...>& args() const noexcept { return bound_; }

 private:
  F f_;
  std::tuple<Bound...> bound_;
};

// Binds `args` (decayed copies) in front of `f`'s parameters. Mirrors functools.partial.
template <class F, class... Args>
Partial<std::decay_t<F>, std::decay_t<Args>...> partial(F&& f, Args&&... args) {
  return {std::forward<F>(f), std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...)};
}

namespace detail {

// How a callable of type F is written into a task and read back in the worker.
template <class F>
struct callable_codec {
  static constexpr bool raw = std::is_trivially_copyable_v<F>;
  static constexpr bool encoded = !raw && is_encodable_v<F> && std::is_default_constructible_v<F>;
  static constexpr bool ok = raw || encoded;

  static std::size_t size(const F& f) {
    if constexpr (raw) {
      return sizeof(F);
    } else {
      return mproc::encoded_size(f);
    }
  }
  static void write(Writer& w, const F& f) {
    if constexpr (raw) {
      w.write(&f, sizeof(F));
    } else {
      mproc::encode(w, f);
    }
  }
  static F read(Reader& r) {
    if constexpr (raw) {
      std::array<std::byte, sizeof(F)> bytes;
      r.read(bytes.data(), sizeof(F));
      return std::bit_cast<F>(bytes);
    } else {
      return mproc::decode<F>(r);
    }
  }
};

// A Partial travels as its callable (by `Inner`, the rule of the way it travels) followed by the
// encoded bound arguments; one shape for callable_codec and travel_codec.
template <class Inner, class F, class... Bound>
struct partial_codec {
  static constexpr bool ok = Inner::ok && (is_encodable_v<Bound> && ...);

  static std::size_t size(const Partial<F, Bound...>& p) {
    return Inner::size(p.func()) + mproc::encoded_size(p.args());
  }
  static void write(Writer& w, const Partial<F, Bound...>& p) {
    Inner::write(w, p.func());
    mproc::encode(w, p.args());
  }
  static Partial<F, Bound...> read(Reader& r) {
    F f = Inner::read(r);
    return Partial<F, Bound...>(std::move(f), mproc::decode<std::tuple<Bound...>>(r));
  }
};

template <class F, class... Bound>
struct callable_codec<Partial<F, Bound...>> : partial_codec<callable_codec<F>, F, Bound...> {};

// How a callable of type F travels to a *fresh program image* (start methods spawn and
// forkserver; docs/design.md, "Code that travels"): only what cannot hold an address of the
// sender's memory. A function pointer travels as a code reference (relocated in the receiver);
// an empty callable (a lambda without captures, a stateless function object) as nothing; a
// function object with serialize() (or its own codec) through the codec; a Partial when its
// callable travels and its bound arguments are encodable. A lambda with captures, or a trivially
// copyable function object without serialize(), does not travel: its bytes may hold pointers
// into the sender (`ok` is false; the caller says so at run time, naming `partial`).
template <class F>
struct travel_codec {
  static constexpr bool function_pointer =
      std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>;
  static constexpr bool empty =
      !function_pointer && std::is_empty_v<F> && std::is_trivially_copyable_v<F>;
  static constexpr bool encoded =
      !function_pointer && !empty && is_encodable_v<F> && std::is_default_constructible_v<F> &&
      (rule_of<F>() == rule::serialize || rule_of<F>() == rule::adapter ||
       !std::is_base_of_v<builtin_codec<F>, codec<F>>);
  static constexpr bool ok = function_pointer || empty || encoded;

  static void write(Writer& w, const F& f) {
    if constexpr (function_pointer) {
      const CodeRef ref = code_ref_of(reinterpret_cast<const void*>(f));
      mproc::encode(w, ref);
    } else if constexpr (encoded) {
      mproc::encode(w, f);
    }
  }
  static std::size_t size(const F& f) {
    if constexpr (function_pointer) {
      return mproc::encoded_size(CodeRef{});
    } else if constexpr (encoded) {
      return mproc::encoded_size(f);
    } else {
      return 0;
    }
  }
  static F read(Reader& r) {
    if constexpr (function_pointer) {
      return reinterpret_cast<F>(const_cast<void*>(resolve_code(mproc::decode<CodeRef>(r))));
    } else if constexpr (encoded) {
      return mproc::decode<F>(r);
    } else {
      return std::bit_cast<F>(std::array<std::byte, sizeof(F)>{});
    }
  }
};

template <class F, class... Bound>
struct travel_codec<Partial<F, Bound...>> : partial_codec<travel_codec<F>, F, Bound...> {};

// A static_assert with the rules, for the Pool's entry points.
template <class F>
constexpr bool check_callable() {
  static_assert(callable_codec<F>::ok,
                "mproc::Pool: this callable cannot travel to a worker process. Use a function, a "
                "lambda without captures or with trivially copyable captures, a function object "
                "with serialize() and a default constructor, or mproc::partial(f, args...) to "
                "bind a std::string, std::vector, ... (each bound argument must be encodable by "
                "mproc::codec). See mproc/partial.hpp.");
  return callable_codec<F>::ok;
}

}  // namespace detail
}  // namespace mproc
