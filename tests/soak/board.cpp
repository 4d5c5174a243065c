// soak/board.cpp — the shared board's helpers.
#include "soak/board.hpp"

#include <sys/mman.h>

#include <cstring>
#include <new>

namespace soak {

const char* role_name(Role role) {
  switch (role) {
    case Role::kProducer:
      return "producer";
    case Role::kConsumer:
      return "consumer";
    case Role::kJoinableProducer:
      return "joinable producer";
    case Role::kJoinableConsumer:
      return "joinable consumer";
    case Role::kLocker:
      return "locker";
    case Role::kSyncParty:
      return "sync party";
    case Role::kPoolClient:
      return "pool client";
  }
  return "?";
}

const char* doing_name(Doing doing) {
  switch (doing) {
    case Doing::kIdle:
      return "idle";
    case Doing::kPut:
      return "Queue::put";
    case Doing::kGet:
      return "Queue::get";
    case Doing::kTaskDone:
      return "JoinableQueue::task_done";
    case Doing::kThrottled:
      return "waiting for the ledger window";
    case Doing::kLock:
      return "Lock::acquire";
    case Doing::kRLock:
      return "RLock::acquire";
    case Doing::kGate:
      return "Event::wait";
    case Doing::kBarrier:
      return "Barrier::wait";
    case Doing::kCondition:
      return "Condition::wait_for";
    case Doing::kPoolStart:
      return "Pool::Pool";
    case Doing::kPoolSubmit:
      return "Pool::apply_async";
    case Doing::kPoolWait:
      return "waiting for pool results";
    case Doing::kPoolJoin:
      return "Pool::join/terminate";
  }
  return "?";
}

void ErrorLog::add(const char* fmt, ...) {
  const std::uint32_t i = next.fetch_add(1);
  if (i >= kLines) return;
  std::va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(lines[i], kWidth, fmt, ap);
  va_end(ap);
}

void ErrorLog::print(std::FILE* out) const {
  const std::uint32_t n = next.load();
  for (std::uint32_t i = 0; i < n && i < kLines; ++i)
    std::fprintf(out, "soak:   %.*s\n", static_cast<int>(strnlen(lines[i], kWidth)), lines[i]);
  if (n > kLines) std::fprintf(out, "soak:   (%u more not kept)\n", n - kLines);
}

Board* make_board() {
  void* mem =
      mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::bad_alloc();
  return ::new (mem) Board();
}

void report_error(Board& board, const char* fmt, ...) {
  board.counters.errors++;
  const std::uint32_t i = board.log.next.fetch_add(1);
  if (i >= ErrorLog::kLines) return;
  std::va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(board.log.lines[i], ErrorLog::kWidth, fmt, ap);
  va_end(ap);
}

}  // namespace soak
