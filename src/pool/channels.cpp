// The channels between a Pool's parent and its workers (see channels.hpp).
#include "pool/channels.hpp"

#include <sys/socket.h>

#include <new>
#include <string>
#include <system_error>
#include <utility>

#include "posix/error.hpp"
#include "posix/memfd.hpp"
#include "posix/pidfd.hpp"
#include "posix/region.hpp"
#include "posix/socket.hpp"

namespace mproc::detail {
namespace {

Queue<EventMsg> make_result_queue() {
  try {
    return Queue<EventMsg>(0, QueueOptions{.capacity = kEventBytes});
  } catch (const std::system_error& e) {
    throw_system_error(e.code(), "mproc::Pool: cannot create the result queue (" +
                                     std::to_string(kEventBytes >> 20) + " MiB of shared memory)");
  }
}

}  // namespace

PoolChannels::PoolChannels(int n, bool fresh) : events(make_result_queue()) {
  const auto count = static_cast<std::size_t>(n);
  const std::string of = " of " + std::to_string(n);
  mailboxes.reserve(count);
  for (int i = 0; i < n; ++i) {
    try {
      mailboxes.emplace_back(0, QueueOptions{.capacity = kMailboxBytes});
    } catch (const std::system_error& e) {
      throw_system_error(
          e.code(), "mproc::Pool: cannot create the mailbox of worker " + std::to_string(i + 1) +
                        of + " (" + std::to_string(kMailboxBytes >> 20) + " MiB of shared memory)");
    }
  }
  fd_parent.reserve(count);
  fd_worker.reserve(count);
  try {
    make_fd_channels_and_staging(n, fresh);
  } catch (...) {
    release();  // a constructor that throws runs no destructor
    throw;
  }
}

void PoolChannels::make_fd_channels_and_staging(int n, bool fresh) {
  const auto count = static_cast<std::size_t>(n);
  const std::string of = " of " + std::to_string(n);
  for (int i = 0; i < n; ++i) {
    int fds[2];
    if (std::error_code ec = socket_pair(SOCK_SEQPACKET, fds))
      throw_system_error(ec, "mproc::Pool: cannot create the descriptor channel of worker " +
                                 std::to_string(i + 1) + of + ": socketpair");
    fd_parent.push_back(fds[0]);
    fd_worker.push_back(fds[1]);
  }
  slot_shared_bytes = sizeof(SlotShared) * count;
  void* shared = nullptr;
  const char* call = "mmap";
  std::error_code ec = fresh ? create_unreserved_memfd(slot_shared_bytes, "mproc-pool-staging",
                                                       slot_shared_fd, shared, call)
                             : map_shared_anonymous(slot_shared_bytes, shared);
  if (ec)
    throw_system_error(ec, "mproc::Pool: cannot map the workers' staging areas (" +
                               std::to_string(slot_shared_bytes) +
                               " bytes of shared memory): " + call);
  slot_shared = static_cast<SlotShared*>(shared);
  for (std::size_t i = 0; i < count; ++i)
    new (&slot_shared[i]) SlotShared;  // the staging bytes stay untouched
}

PoolChannels::~PoolChannels() { release(); }

void PoolChannels::release() noexcept {
  for (int fd : fd_parent) close_fd(fd);
  for (int fd : fd_worker) close_fd(fd);
  fd_parent.clear();
  fd_worker.clear();
  if (slot_shared) unmap(slot_shared, slot_shared_bytes);
  slot_shared = nullptr;
  close_fd(slot_shared_fd);
  slot_shared_fd = -1;
}

void PoolChannels::close_worker_ends() noexcept {
  for (int& fd : fd_worker) close_fd(std::exchange(fd, -1));
  close_fd(std::exchange(slot_shared_fd, -1));
}

}  // namespace mproc::detail
