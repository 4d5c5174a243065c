// A freshly executed program that receives a Lock, an Event and a SharedMemory on an inherited
// socket (as a spawned child receives its arguments) and uses them against the process that sent
// them. Used by tests/integration/sync_travel_process_test.cpp.
//
//   travel_receiver_main <socket fd>
//
// Reads what helpers/travel_pipe.hpp's send_value sends (one message with a u64 descriptor count
// and the encoded bytes, then one SCM_RIGHTS message per descriptor with its u64 index), decodes
// a std::tuple<Lock, Event, SharedMemory>, then: takes the lock, writes "hello" at the start of
// the shared memory, sets the event, waits (at most 20 s) for one byte from the sender, releases
// the lock and answers with one byte. Exit status 0 on success; 10+ names the step that failed.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mproc/codec.hpp>
#include <mproc/detail/travel.hpp>
#include <mproc/shared_memory.hpp>
#include <mproc/sync.hpp>
#include <tuple>
#include <vector>

namespace {

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1;
}

// One descriptor and its tag, as posix/fd_passing.cpp sends them.
bool recv_fd(int sock, std::uint64_t& tag, int& fd) {
  iovec iov{&tag, sizeof tag};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != static_cast<ssize_t>(sizeof tag)) return false;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c == nullptr || c->cmsg_type != SCM_RIGHTS) return false;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return true;
}

int run(int sock) {
  if (!readable(sock, 20000)) return 10;
  std::vector<std::byte> msg(200 * 1024);
  const ssize_t n = recv(sock, msg.data(), msg.size(), 0);
  if (n < static_cast<ssize_t>(sizeof(std::uint64_t))) return 11;
  std::uint64_t count = 0;
  std::memcpy(&count, msg.data(), sizeof count);
  mproc::detail::Descriptors fds;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t tag = 0;
    int fd = -1;
    if (!readable(sock, 20000) || !recv_fd(sock, tag, fd) || tag != i) return 12;
    fds.adopt(fd);
  }
  using Args = std::tuple<mproc::Lock, mproc::Event, mproc::SharedMemory>;
  mproc::detail::TravelIn scope(fds);
  Args args = mproc::from_bytes<Args>(std::span<const std::byte>(
      msg.data() + sizeof count, static_cast<std::size_t>(n) - sizeof count));
  auto& [lock, event, shm] = args;
  if (!lock.acquire(std::chrono::seconds(20))) return 13;
  if (shm.size() < 5) return 14;
  std::memcpy(shm.buf().data(), "hello", 5);
  event.set();
  char c = 0;
  if (!readable(sock, 20000) || recv(sock, &c, 1, 0) != 1) return 15;
  lock.release();
  if (send(sock, "k", 1, MSG_NOSIGNAL) != 1) return 16;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  try {
    return run(std::atoi(argv[1]));
  } catch (const std::exception&) {
    return 3;
  }
}
