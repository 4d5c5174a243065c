// A freshly executed program that receives a Queue<int> and a Connection the way a spawned child
// does: their bytes and descriptors arrive over a SOCK_SEQPACKET socket it inherited as descriptor
// 3 (the wire of tests/helpers/travel_pipe.hpp: one message with a u64 descriptor count and the
// encoded bytes, then one message per descriptor, SCM_RIGHTS with a u64 tag equal to its index).
// Used by tests/integration/channel_travel_test.cpp.
//
// Then: receives `n` (int) on the Connection, puts 0..n-1 on the queue, and sends back "ok".
// Exit status 0 when all went well; 2-5 name the step that failed (5: an mproc exception, printed
// on stderr).
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mproc/detail/travel.hpp>
#include <mproc/pipe.hpp>
#include <mproc/queue.hpp>
#include <span>
#include <string>
#include <tuple>
#include <vector>

namespace {

constexpr int kSocket = 3;

int recv_one_fd(int sock, std::uint64_t& tag) {
  iovec iov{&tag, sizeof tag};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != static_cast<ssize_t>(sizeof tag)) return -1;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c == nullptr || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int))) return -1;
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

}  // namespace

int main() {
  std::vector<std::byte> msg(64 * 1024);
  const ssize_t n = recv(kSocket, msg.data(), msg.size(), 0);
  if (n < static_cast<ssize_t>(sizeof(std::uint64_t))) return 2;
  std::uint64_t count = 0;
  std::memcpy(&count, msg.data(), sizeof count);
  if (count > 16) return 3;
  mproc::detail::Descriptors fds;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t tag = ~std::uint64_t{0};
    const int fd = recv_one_fd(kSocket, tag);
    if (fd < 0 || tag != i) return 4;
    fds.adopt(fd);
  }
  try {
    auto [q, conn] = [&] {
      mproc::detail::TravelIn scope(fds);
      return mproc::from_bytes<std::tuple<mproc::Queue<int>, mproc::Connection>>(
          std::span<const std::byte>(msg.data() + sizeof count,
                                     static_cast<std::size_t>(n) - sizeof count));
    }();
    fds.clear();  // the handles hold their own duplicates
    const int items = conn.recv<int>();
    for (int i = 0; i < items; ++i) q.put(i);
    conn.send(std::string("ok"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "channel_travel_main: %s\n", e.what());
    return 5;
  }
  close(kSocket);
  return 0;
}
