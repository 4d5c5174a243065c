// start/boot.hpp — how a child in a fresh program image (spawn, forkserver) learns what to run:
// the boot channel between the process that starts it and the child.
//
// The channel is a SOCK_SEQPACKET socket pair made by the starting process; the child holds one end
// (as descriptor 3 after spawn's exec; inherited from the forkserver otherwise). Messages, in
// order:
//   1. starter -> child: the header (magic, version, the body's length, the descriptor count) with
//      the first descriptors; then further descriptors (a 1-byte message each batch of up to 250);
//      then the body in messages of up to 64 KiB. The body is a BootMessage (codec encoding). The
//      descriptors are the ones the target's handles need (TravelOut), then the parent's pidfd
//      (the child's parent_process() sentinel), always last.
//   2. child -> starter: the acknowledgement, once the target is decoded (its code relocated, its
//      handles mapped): kBootOk and the child's pid, or kBootFailed followed by the error's text.
//      (Or, from a forkserver that could not fork: kBootForkFailed and the errno.) A small boot
//      message is sent before the child exists (the socket holds it), so the child never waits.
//      Process::start() returns after kBootOk and throws ProcessError with the text after
//      kBootFailed.
//   3. forkserver -> starter, on the child's end (the server keeps a copy): kBootStatus and the
//      exit code, once the server has reaped the child (the child is the server's, not the
//      starter's).
// Every length read from the channel is checked against fixed bounds before anything is allocated
// for it (the body at most kMaxBootBody, descriptors at most kMaxBootFds).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mproc/detail/travel.hpp>
#include <string>
#include <system_error>
#include <vector>

namespace mproc::detail {

inline constexpr std::uint8_t kBootOk = 0;
inline constexpr std::uint8_t kBootFailed = 1;
inline constexpr std::uint8_t kBootStatus = 2;
inline constexpr std::uint8_t kBootForkFailed = 3;  // forkserver -> starter: fork failed (errno)
inline constexpr std::size_t kMaxBootBody = std::size_t{1} << 30;
inline constexpr std::size_t kMaxBootFds = 4096;

// What a fresh child needs to become the Process it is.
struct BootMessage {
  std::int32_t parent_pid = 0;
  std::string parent_name;
  std::string name;
  std::string identity;
  bool daemon = false;
  std::vector<ImageRecord> images;  // the sender's images the child may meet
  CodeRef decoder;                  // ProcessTarget::Decoder for the target
  std::vector<std::byte> target;    // the target's encoding (ProcessTarget::encode)
  template <class A>
  void serialize(A& a) {
    a(parent_pid, parent_name, name, identity, daemon, images, decoder, target);
  }
};

// Starter: sends the message and `fds` (borrowed). Errors: the errno of the failing send (EPIPE,
// ECONNRESET: the child is gone).
std::error_code send_boot(int sock, const BootMessage& m, const std::vector<int>& fds) noexcept;
// Child: receives the message and its descriptors (owned by `fds`). Returns false with `why` set
// when the channel breaks or what arrives is not a boot message.
bool recv_boot(int sock, BootMessage& m, Descriptors& fds, std::string& why) noexcept;

// Child: the acknowledgement (best effort: a starter that is gone cannot be told). kBootOk carries
// the child's pid (a forkserver's starter learns it there: the server does not answer requests).
void send_boot_ack(int sock, bool ok, const std::string& error) noexcept;
// Forkserver: the fork for this channel failed with `err`.
void send_boot_fork_failed(int sock, int err) noexcept;
// Starter: waits for the acknowledgement; true on kBootOk. Otherwise `error` holds the child's
// text, or `gone` is set when the child ended before it acknowledged (EOF, ECONNRESET, or the
// forkserver's status came first: `exitcode` and `pid` are then its, else kExitCodeUnknown), or
// `fork_errno` is set when the forkserver could not fork (0 otherwise), or `error` names the failed
// call. On success `pid` is the child's.
bool recv_boot_ack(int sock, std::string& error, bool& gone, int& exitcode, int& pid,
                   int& fork_errno) noexcept;

// Forkserver: the exit code of the child whose end this is.
// (With the child's pid: a starter whose child ended before it acknowledged learns it here.)
void send_boot_status(int sock, int exitcode, int pid) noexcept;
// Starter: reads the status without blocking. Returns true when the channel has answered: `exited`
// and `exitcode` set (exitcode kExitCodeUnknown when the server ended before it could report);
// false while nothing has arrived.
bool try_recv_boot_status(int sock, int& exitcode) noexcept;

}  // namespace mproc::detail
