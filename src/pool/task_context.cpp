// TaskContext's non-inline members (see include/mproc/detail/pool_core.hpp): the staging of a
// chunk's outcomes in a worker, and the layout of a piece and of an error record, which every
// reader and writer of them uses.
#include <algorithm>
#include <chrono>
#include <mproc/detail/pool_core.hpp>

#include "pool/protocol.hpp"
#include "stacktrace.hpp"

namespace mproc::detail {
namespace {

// A chunk that has run this long since its last piece sends the outcomes it has staged. The clock
// is read every `stride` elements, a stride that doubles while elements are quick (under
// kQuickCheckNs between two reads), up to kMaxStride, and halves when they are slow.
constexpr std::int64_t kFlushNs = 2'000'000;
constexpr std::int64_t kQuickCheckNs = 50'000;
constexpr std::int64_t kSlowCheckNs = 500'000;
constexpr std::uint64_t kMaxStride = 4096;

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// --- the layouts ------------------------------------------------------------------------------

void TaskContext::write_piece(Writer& w, const std::byte* errors, std::size_t error_bytes,
                              const std::byte* values, std::size_t value_bytes) {
  w.write_value(static_cast<std::uint64_t>(error_bytes));
  w.write(errors, error_bytes);
  w.write(values, value_bytes);
}

std::uint64_t TaskContext::read_piece_header(Reader& r) {
  const auto error_bytes = r.read_value<std::uint64_t>();
  if (error_bytes > r.remaining())
    throw DecodeError("mproc::Pool: a chunk's result does not match its elements");
  return error_bytes;
}

// An error record: index, type, what() and trace (stacktrace.hpp), as mproc::encode writes them.
std::size_t error_record_bytes(const std::string& type, const std::string& what,
                               const std::string& trace) {
  return sizeof(std::uint64_t) + mproc::encoded_size(type) + mproc::encoded_size(what) +
         mproc::encoded_size(trace);
}

void write_error_record(Writer& w, std::uint64_t index, const std::string& type,
                        const std::string& what, const std::string& trace) {
  w.write_value(index);
  mproc::encode(w, type);
  mproc::encode(w, what);
  mproc::encode(w, trace);
}

void read_error_record(Reader& r, std::uint64_t& index, std::string& type, std::string& what,
                       std::string& trace) {
  index = r.read_value<std::uint64_t>();
  type = mproc::decode<std::string>(r);
  what = mproc::decode<std::string>(r);
  trace = read_trace(r);
}

std::size_t TaskContext::error_record_bytes(const std::string& type, const std::string& what) {
  return detail::error_record_bytes(type, what, std::string());
}

void TaskContext::write_error_record(Writer& w, std::uint64_t index, const std::string& type,
                                     const std::string& what) {
  detail::write_error_record(w, index, type, what, std::string());
}

void TaskContext::read_error_record(Reader& r, std::uint64_t& index, std::string& type,
                                    std::string& what) {
  std::string trace;
  detail::read_error_record(r, index, type, what, trace);
}

// --- staging, in the worker -------------------------------------------------------------------

Spans TaskContext::checked_run(std::uint64_t elements) const {
  if (run_.empty()) return Spans{Span{0, elements}};
  for (const Span& s : run_)
    if (s.begin >= s.end || s.end > elements)
      throw DecodeError("mproc::Pool: a chunk's list of elements to run is out of range");
  return run_;
}

TaskContext::TaskContext(Spans run, void* shared, EmitFn emit_fn, void* owner) noexcept
    : run_(std::move(run)),
      element_(&static_cast<SlotShared*>(shared)->element),
      staged_(&static_cast<SlotShared*>(shared)->staged),
      staged_first_(&static_cast<SlotShared*>(shared)->staged_first),
      values_(static_cast<SlotShared*>(shared)->values),
      errors_(static_cast<SlotShared*>(shared)->errors),
      value_cap_(kStageValueBytes),
      error_cap_(kStageErrorBytes),
      emit_(emit_fn),
      owner_(owner) {
  last_check_ns_ = last_emit_ns_ = now_ns();
}

bool TaskContext::make_room(std::size_t value_bytes) {
  flush();
  return value_bytes <= value_cap_;
}

// Called in the handler of the element's exception (invoke_chunk), whose stack at the throw is
// looked up here: the record carries the element's traceback.
void TaskContext::stage_error(std::uint64_t index, const std::string& type,
                              const std::string& what) {
  const std::string trace = current_exception_trace();
  const std::size_t bytes = detail::error_record_bytes(type, what, trace);
  auto write = [&](std::byte* at) {
    Writer w(at, at + bytes);
    detail::write_error_record(w, index, type, what, trace);
  };
  if (bytes > error_cap_ - error_bytes_ || records_ == kMaxRecords) flush();
  if (bytes > error_cap_) {
    std::vector<std::byte> alone(bytes);
    write(alone.data());
    send_alone(index, alone.data(), bytes, nullptr, 0);
    return;
  }
  write(errors_ + error_bytes_);
  error_bytes_ += bytes;
  commit(index);
}

void TaskContext::send_alone(std::uint64_t index, const std::byte* errors, std::size_t error_bytes,
                             const std::byte* values, std::size_t value_bytes) {
  flush();
  emit_(owner_, Spans{Span{index, index + 1}}, errors, error_bytes, values, value_bytes);
  last_emit_ns_ = now_ns();
}

void TaskContext::flush() {
  if (records_ == 0) return;
  emit_(owner_, covered_, errors_, error_bytes_, values_, value_bytes_);
  staged_->store(0, order::relaxed);
  value_bytes_ = error_bytes_ = 0;
  records_ = 0;
  covered_.clear();
  last_emit_ns_ = last_check_ns_ = now_ns();
}

void TaskContext::finish(EmitFn final_emit, void* owner) {
  final_emit(owner, covered_, errors_, error_bytes_, values_, value_bytes_);
}

bool TaskContext::check_clock() noexcept {
  const std::int64_t now = now_ns();
  const std::int64_t since_check = now - last_check_ns_;
  last_check_ns_ = now;
  if (since_check < kQuickCheckNs)
    stride_ = std::min(stride_ * 2, kMaxStride);
  else if (since_check > kSlowCheckNs)
    stride_ = std::max<std::uint64_t>(stride_ / 2, 1);
  countdown_ = stride_;
  return now - last_emit_ns_ >= kFlushNs;
}

}  // namespace mproc::detail
