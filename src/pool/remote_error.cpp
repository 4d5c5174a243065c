// How a task's exception crosses the process boundary: described in the worker (demangled type
// name, what(), and its traceback: stacktrace.hpp), rebuilt in the parent (RemoteError, or a
// registered type with it nested). Also TaskSink's default members.
#include <mproc/detail/pool_core.hpp>
#include <mutex>
#include <string>
#include <typeinfo>
#include <unordered_map>

#include "pool/protocol.hpp"
#include "posix/demangle.hpp"
#include "posix/thread_id.hpp"
#include "stacktrace.hpp"

namespace mproc::detail {

TaskSink::~TaskSink() = default;
// A sink gets the calls of its kind of task only (see TaskSink); the others are never made.
void TaskSink::on_ok(std::uint64_t, Reader&) {
  throw DecodeError("mproc::Pool: a task's result reached a sink of chunks");
}
void TaskSink::on_error(std::uint64_t, std::exception_ptr) noexcept {}
void TaskSink::on_elements(std::uint64_t, std::uint64_t, const Spans&, std::int32_t, std::uint64_t,
                           Reader&) {
  throw DecodeError("mproc::Pool: a chunk's result reached a sink of single tasks");
}
void TaskSink::on_elements_error(std::uint64_t, std::uint64_t, const Spans&,
                                 std::exception_ptr) noexcept {}

namespace {

std::mutex g_remote_mu;
std::unordered_map<std::string, RemoteFactory>& remote_factories() {
  static auto* m = new std::unordered_map<std::string, RemoteFactory>();  // never destroyed
  return *m;
}

}  // namespace

void describe_current(std::string& type, std::string& what) noexcept {
  try {
    type = current_exception_type_name();
    try {
      throw;
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what.clear();
    }
  } catch (...) {
  }
}

void describe_current_exception(std::string& type, std::string& what) noexcept {
  describe_current(type, what);
}

void register_remote_exception(const std::type_info& type, RemoteFactory make) {
  const std::string name = demangle(type.name());
  std::lock_guard<std::mutex> g(g_remote_mu);
  remote_factories()[name] = make;
}

std::exception_ptr remote_error(const std::string& type, const std::string& what, std::int32_t pid,
                                TaskOrigin origin) {
  return remote_error(type, what, std::string(), pid, origin);
}

std::exception_ptr remote_error(const std::string& type, const std::string& what,
                                const std::string& trace, std::int32_t pid, TaskOrigin origin) {
  RemoteFactory make = nullptr;
  {
    std::lock_guard<std::mutex> g(g_remote_mu);
    auto& m = remote_factories();
    if (auto it = m.find(type); it != m.end()) make = it->second;
  }
  RemoteError info(type, what, pid, origin, trace);
  if (make) {
    try {
      return make(what, info);
    } catch (...) {
      // A factory that throws (its constructor did): fall back to the RemoteError.
    }
  }
  return std::make_exception_ptr(std::move(info));
}

namespace {
thread_local const DeliveryPlace* t_delivery_place = nullptr;
}  // namespace

void set_delivery_place(const DeliveryPlace* place) noexcept { t_delivery_place = place; }
const DeliveryPlace* delivery_place() noexcept { return t_delivery_place; }

std::int32_t current_process_id() noexcept { return static_cast<std::int32_t>(this_process_id()); }

}  // namespace mproc::detail
