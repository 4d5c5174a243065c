// Decoding a streamed Queue message whose producer announced far more than it sent: the consumer
// allocates in proportion to the chunks that arrived, not to the total in the first chunk.
//
// The hostile producer uses only the public API: a codec whose size() announces 1 GiB or 4 GiB,
// whose encode() writes a string count to match and some megabytes, then stalls until it is
// killed. Its message is larger than a quarter of the ring, so it streams (queue.hpp), and the
// first chunk carries the announced total, which the consumer's Reader reports as remaining().
// The consumer runs in a child process whose address space is limited to its size plus 256 MiB
// (RLIMIT_AS) and reports its peak RSS growth (VmHWM); under a sanitizer (helpers/sanitizer.hpp)
// neither the limit nor the growth applies, the outcomes are still checked.
//
// Every cross-process wait is bounded: children are forked with a deadline (helpers/child.hpp)
// and are killed if the test process dies.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mproc/codec.hpp>
#include <mproc/queue.hpp>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

#include "helpers/child.hpp"
#include "helpers/sanitizer.hpp"

using namespace std::chrono_literals;
using mproc_test::Child;

namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kGiB = std::size_t{1} << 30;
constexpr std::size_t kHeadroom = 256 * kMiB;
constexpr std::size_t kSent = 16 * kMiB;
constexpr long kMaxGrowthKiB = 96 * 1024;

// Written to (one byte) by a hostile encoder once it has written all it will write.
int g_stalled_fd = -1;

// A std::string on the wire; the producer's codec announces `announced` bytes and writes the
// count of a string of `announced - 8` characters, then `sent` of them. When that is the whole
// string the message is honest; otherwise the encoder stalls until the producer is killed.
struct Lying {
  std::size_t announced;
  std::size_t sent;
};

long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(field);
  while (std::getline(in, line))
    if (line.compare(0, n, field) == 0) return std::atol(line.c_str() + n);
  return -1;
}

template <class F>
std::string outcome(F&& f) {
  try {
    return "value " + f();
  } catch (const mproc::Empty&) {
    return "Empty";
  } catch (const mproc::DecodeError& e) {
    return std::string("DecodeError: ") + e.what();
  } catch (const std::bad_alloc&) {
    return "bad_alloc";
  } catch (const std::exception& e) {
    return std::string("other: ") + typeid(e).name() + ": " + e.what();
  }
}

}  // namespace

template <>
struct mproc::codec<Lying> {
  static std::size_t size(const Lying& l) { return l.announced; }
  static void encode(Writer& w, const Lying& l) {
    w.write_value(static_cast<std::uint64_t>(l.announced - 8));
    const std::vector<char> piece(64 * 1024, 'x');
    for (std::size_t done = 0; done < l.sent;) {
      const std::size_t k = std::min(piece.size(), l.sent - done);
      w.write(piece.data(), k);
      done += k;
    }
    if (l.sent + 8 == l.announced) return;
    const char one = 1;
    (void)::write(g_stalled_fd, &one, 1);
    for (;;) ::pause();  // until killed
  }
  static Lying decode(Reader& r) {
    const auto s = mproc::decode<std::string>(r);
    return Lying{s.size() + 8, s.size()};
  }
};

namespace {

TEST(CodecStreamHostile, AQueueConsumerAllocatesForTheChunksThatArrivedNotTheAnnouncedTotal) {
  for (const std::size_t announced : {kGiB + 8, 4 * kGiB + 8}) {
    SCOPED_TRACE(announced);
    mproc::Queue<Lying> q;  // 1 MiB ring: the message streams in 128 KiB chunks
    int stalled[2];
    int report[2];
    ASSERT_EQ(::pipe2(stalled, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);

    Child producer([&] {
      g_stalled_fd = stalled[1];
      q.put(Lying{announced, kSent});
      return 0;
    });
    ::close(stalled[1]);

    Child consumer([&] {
      const auto vm = static_cast<rlim_t>(status_kib("VmSize:")) * 1024;
      const rlimit lim{vm + kHeadroom, vm + kHeadroom};
      if (!mproc_test::kSanitized && ::setrlimit(RLIMIT_AS, &lim) != 0) return 90;
      const long rss0 = status_kib("VmRSS:");
      auto say = [&](const std::string& line) {
        const std::string l = line + "\n";
        return ::write(report[1], l.data(), l.size()) == static_cast<ssize_t>(l.size());
      };
      // The stream ends when its producer is found dead; nothing else comes before the timeout.
      if (!say(outcome([&] { return std::to_string(q.get(2s).sent); }))) return 91;
      // The queue still works: the honest message put after that arrives.
      if (!say(outcome([&] { return std::to_string(q.get(30s).sent); }))) return 91;
      return say("grew_kib " + std::to_string(status_kib("VmHWM:") - rss0)) ? 0 : 91;
    });
    ::close(report[1]);

    // Once the producer has written all it will, give the consumer time to drain it, then kill
    // the producer mid-message.
    pollfd p{stalled[0], POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 30000), 1) << "the producer never stalled";
    std::this_thread::sleep_for(300ms);
    producer.kill();
    EXPECT_EQ(producer.wait(30s), -SIGKILL);

    // Once the first get has ended, an honest message for the second.
    std::string text;
    char buf[1024];
    bool put = false;
    for (;;) {
      if (!put && text.find('\n') != std::string::npos) {
        q.put(Lying{8 + 1000, 1000});
        put = true;
      }
      pollfd r{report[0], POLLIN, 0};
      if (::poll(&r, 1, 60000) != 1) break;
      const ssize_t k = ::read(report[0], buf, sizeof buf);
      if (k <= 0) break;
      text.append(buf, static_cast<std::size_t>(k));
    }
    EXPECT_EQ(consumer.wait(30s), 0);
    ::close(stalled[0]);
    ::close(report[0]);

    const std::size_t grew_at = text.find("grew_kib ");
    ASSERT_NE(grew_at, std::string::npos) << text;
    EXPECT_EQ(text.substr(0, grew_at), "Empty\nvalue 1000\n");
    const long grew = std::atol(text.c_str() + grew_at + 9);
    RecordProperty("consumer_growth_kib", std::to_string(grew));
    if (mproc_test::kSanitized) continue;
    EXPECT_LE(grew, kMaxGrowthKiB) << "the consumer's resident memory grew by " << grew
                                   << " KiB while the producer sent " << kSent / 1024 << " KiB";
  }
}

}  // namespace
