// Shared memory is reserved when it is created: running out is a std::system_error at creation,
// with nothing left behind, never a SIGBUS at the first write. Covers named segments on a full
// /dev/shm (a tiny tmpfs in a private mount namespace), anonymous segments larger than the
// machine, RLIMIT_AS, and the memfd of every object made through the shared region allocator.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mproc/queue.hpp>
#include <mproc/shared_memory.hpp>
#include <mproc/sync.hpp>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "helpers/child.hpp"
#include "helpers/shared_page.hpp"

namespace {

using mproc::SharedMemory;
using mproc_test::run_in_child;
using mproc_test::SharedPage;
using namespace std::chrono_literals;

constexpr int kSkip = 77;

// Sanitizers reserve terabytes of address space for their shadow memory: an RLIMIT_AS case cannot
// run under them.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif
constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;

// What a child saw, for a readable failure in the parent.
struct Report {
  char text[1024] = {};
  void set(const std::string& s) { std::snprintf(text, sizeof text, "%s", s.c_str()); }
};

std::vector<std::string> dev_shm_entries() {
  std::vector<std::string> found;
  if (DIR* d = opendir("/dev/shm")) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") found.push_back(n);
    }
    closedir(d);
  }
  return found;
}

// Runs `fn` in a child whose /dev/shm is a fresh tmpfs of `size` bytes in a private mount
// namespace (the parent's /dev/shm is untouched). Returns the child's exit code, kSkip when the
// namespace or the mount cannot be had (not root).
int with_small_dev_shm(std::size_t size, const std::function<int()>& fn) {
  return run_in_child(
      [&] {
        if (unshare(CLONE_NEWNS) != 0) return kSkip;
        if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return kSkip;
        const std::string opts = "size=" + std::to_string(size) + ",mode=1777";
        if (mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0)
          return kSkip;
        if (!dev_shm_entries().empty()) return 3;
        return fn();
      },
      60s);
}

// The errno name and the text of a system_error, checked against what a full /dev/shm must say.
std::string check_enospc(const std::system_error& e, const std::string& name, std::size_t size) {
  const std::string what = e.what();
  if (e.code() != std::errc::no_space_on_device) return "not ENOSPC: " + what;
  if (what.find("mproc::SharedMemory::create") == std::string::npos) return "no operation: " + what;
  if (!name.empty() && what.find(name) == std::string::npos) return "no segment name: " + what;
  if (what.find(std::to_string(size)) == std::string::npos) return "no size: " + what;
  if (what.find("ENOSPC") == std::string::npos) return "no errno name: " + what;
  return "";
}

std::size_t open_fds() {
  std::size_t n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) ++n;
    closedir(d);
  }
  return n;
}

TEST(SharedMemoryReserve, NamedSegmentLargerThanDevShmThrowsENOSPCAndLeavesNothing) {
  SharedPage<Report> report;
  int rc = with_small_dev_shm(1 * kMiB, [&] {
    for (int attempt = 0; attempt < 2; ++attempt) {  // twice: the first leaves nothing to trip on
      try {
        auto shm = SharedMemory::create("mproc_big", 4 * kMiB);
        report->set("create(4 MiB) on a 1 MiB /dev/shm succeeded");
        return 2;
      } catch (const std::system_error& e) {
        std::string bad = check_enospc(e, "mproc_big", 4 * kMiB);
        if (!bad.empty()) {
          report->set(bad);
          return 4;
        }
      }
      if (!dev_shm_entries().empty()) {
        report->set("left in /dev/shm: " + dev_shm_entries()[0]);
        return 5;
      }
    }
    try {
      auto shm = SharedMemory::create(4 * kMiB);  // a generated name
      report->set("create(4 MiB) with a generated name succeeded");
      return 6;
    } catch (const std::system_error& e) {
      std::string bad = check_enospc(e, "", 4 * kMiB);
      if (!bad.empty()) {
        report->set(bad);
        return 7;
      }
    }
    if (!dev_shm_entries().empty()) {
      report->set("left in /dev/shm: " + dev_shm_entries()[0]);
      return 8;
    }
    return 0;
  });
  if (rc == kSkip) GTEST_SKIP() << "needs a private mount namespace (root)";
  EXPECT_EQ(rc, 0) << report->text;
}

TEST(SharedMemoryReserve, NamedSegmentLargerThanFreeSpaceThrowsAndWorksOnceSpaceIsBack) {
  SharedPage<Report> report;
  int rc = with_small_dev_shm(1 * kMiB, [&] {
    std::optional<SharedMemory> fill = SharedMemory::create("mproc_fill", 768 * kKiB);
    const std::size_t fds = open_fds();
    try {
      auto more = SharedMemory::create("mproc_more", 512 * kKiB);
      report->set("create(512 KiB) with 256 KiB free succeeded");
      return 2;
    } catch (const std::system_error& e) {
      std::string bad = check_enospc(e, "mproc_more", 512 * kKiB);
      if (!bad.empty()) {
        report->set(bad);
        return 4;
      }
    }
    if (dev_shm_entries() != std::vector<std::string>{"mproc_fill"}) {
      report->set("/dev/shm holds more than the first segment after a failed create");
      return 5;
    }
    if (open_fds() != fds) {
      report->set("a failed create left a descriptor open");
      return 6;
    }
    fill.reset();  // the space is back
    auto more = SharedMemory::create("mproc_more", 512 * kKiB);
    for (std::byte& b : more.buf()) b = std::byte{0x5a};  // every page is there: no SIGBUS
    auto again = SharedMemory::attach("mproc_more");
    if (again.buf()[512 * kKiB - 1] != std::byte{0x5a}) {
      report->set("the segment made after the space came back does not hold its bytes");
      return 7;
    }
    return 0;
  });
  if (rc == kSkip) GTEST_SKIP() << "needs a private mount namespace (root)";
  EXPECT_EQ(rc, 0) << report->text;
}

// Larger than RAM + swap: refused at once with ENOMEM (not by pushing the machine into reclaim and
// the OOM killer page by page), for every kind of anonymous object, nothing leaked.
TEST(SharedMemoryReserve, AnonymousLargerThanTheMachineThrowsENOMEM) {
  struct sysinfo si {};
  ASSERT_EQ(sysinfo(&si), 0);
  const std::size_t machine =
      (static_cast<std::size_t>(si.totalram) + static_cast<std::size_t>(si.totalswap)) *
      si.mem_unit;
  const std::size_t size = std::max<std::size_t>(std::size_t{1} << 40, 4 * machine);
  SharedPage<Report> report;
  int rc = run_in_child(
      [&] {
        const std::size_t fds = open_fds();
        auto expect_enomem = [&](const char* what, const std::function<void()>& f) -> bool {
          try {
            f();
            report->set(std::string(what) + " of " + std::to_string(size) + " bytes succeeded");
            return false;
          } catch (const std::system_error& e) {
            const std::string text = e.what();
            if (e.code() != std::errc::not_enough_memory ||
                text.find(std::to_string(size)) == std::string::npos ||
                text.find("ENOMEM") == std::string::npos) {
              report->set(std::string(what) + ": " + text);
              return false;
            }
            return true;
          }
        };
        if (!expect_enomem("SharedMemory::anonymous", [&] { (void)SharedMemory::anonymous(size); }))
          return 2;
        if (!expect_enomem("Array<char>", [&] { mproc::Array<char> a(size, mproc::no_lock); }))
          return 3;
        if (open_fds() != fds) {
          report->set("a failed creation left a descriptor open");
          return 4;
        }
        return 0;
      },
      60s);
  EXPECT_EQ(rc, 0) << report->text;
}

// Under an address-space limit the mapping fails before any memory is reserved; the error names the
// size and ENOMEM, nothing is leaked, and creation works again once the limit is lifted.
TEST(SharedMemoryReserve, AddressSpaceLimitThrowsENOMEMAndWorksOnceLifted) {
  if (kSanitized) GTEST_SKIP() << "RLIMIT_AS cases do not run under a sanitizer";
  SharedPage<Report> report;
  int rc = run_in_child([&] {
    rlimit old{};
    if (getrlimit(RLIMIT_AS, &old) != 0) return 2;
    long pages = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
      std::fclose(f);
    }
    if (pages <= 0) return 3;
    const std::size_t used = static_cast<std::size_t>(pages) * 4096;
    rlimit tight{used + 64 * kMiB, old.rlim_max};
    if (setrlimit(RLIMIT_AS, &tight) != 0) return 4;
    const std::size_t fds = open_fds();
    const std::size_t size = 512 * kMiB;
    try {
      (void)SharedMemory::anonymous(size);
      report->set("anonymous(512 MiB) under a 64 MiB headroom succeeded");
      return 5;
    } catch (const std::system_error& e) {
      const std::string text = e.what();
      if (e.code() != std::errc::not_enough_memory ||
          text.find(std::to_string(size)) == std::string::npos ||
          text.find("ENOMEM") == std::string::npos) {
        report->set(text);
        return 6;
      }
    }
    try {
      mproc::Array<double> a(size / sizeof(double));
      report->set("Array<double> of 512 MiB under a 64 MiB headroom succeeded");
      return 7;
    } catch (const std::system_error& e) {
      if (e.code() != std::errc::not_enough_memory) {
        report->set(e.what());
        return 8;
      }
    }
    if (open_fds() != fds) {
      report->set("a failed creation left a descriptor open");
      return 9;
    }
    if (setrlimit(RLIMIT_AS, &old) != 0) return 10;
    auto shm = SharedMemory::anonymous(64 * kMiB);
    shm.buf()[64 * kMiB - 1] = std::byte{1};
    mproc::Value<long> v(7);
    return v.get() == 7 ? 0 : 11;
  });
  EXPECT_EQ(rc, 0) << report->text;
}

// The memfds this process has open, by descriptor, with the name the object gave them.
std::set<int> memfds() {
  std::set<int> found;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d)) {
      char target[256] = {};
      std::string link = std::string("/proc/self/fd/") + e->d_name;
      ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
      if (n > 0 && std::strncmp(target, "/memfd:", 7) == 0) found.insert(std::atoi(e->d_name));
    }
    closedir(d);
  }
  return found;
}

// Every byte of every region made for an object is backed when the object exists: a write can
// never find the memory missing.
TEST(SharedMemoryReserve, RegionsOfEveryObjectAreFullyBacked) {
  std::vector<std::function<void()>> keep;  // objects stay alive until the checks are done
  auto check = [&](const char* what, const std::function<std::function<void()>()>& make) {
    std::set<int> before = memfds();
    keep.push_back(make());
    std::set<int> after = memfds();
    int checked = 0;
    for (int fd : after) {
      if (before.count(fd)) continue;
      struct stat st {};
      ASSERT_EQ(fstat(fd, &st), 0);
      EXPECT_GE(static_cast<std::size_t>(st.st_blocks) * 512, static_cast<std::size_t>(st.st_size))
          << what << ": " << st.st_size << " bytes, " << st.st_blocks * 512 << " backed";
      ++checked;
    }
    EXPECT_GT(checked, 0) << what << " made no memfd";
  };
  check("Lock", [] { return [l = mproc::Lock()] {}; });
  check("RLock", [] { return [l = mproc::RLock()] {}; });
  check("Semaphore", [] { return [s = mproc::Semaphore(2)] {}; });
  check("Event", [] { return [e = mproc::Event()] {}; });
  check("Condition", [] { return [c = std::make_shared<mproc::Condition>()] {}; });
  check("Barrier", [] { return [b = std::make_shared<mproc::Barrier>(2)] {}; });
  check("Value", [] { return [v = mproc::Value<double>(1.5)] {}; });
  check("Array", [] { return [a = mproc::Array<int>(100000)] {}; });
  check("SharedMemory::anonymous", [] {
    return [s = std::make_shared<SharedMemory>(SharedMemory::anonymous(3 * kMiB + 5))] {};
  });
  check("Queue", [] { return [q = std::make_shared<mproc::Queue<int>>()] {}; });
}

TEST(SharedMemoryReserve, NamedSegmentIsFullyBacked) {
  const std::string n = "mproc_test_" + std::to_string(getpid()) + "_backed";
  auto shm = SharedMemory::create(n, 2 * kMiB + 1);
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/shm/" + n).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(2 * kMiB + 1));
  EXPECT_GE(static_cast<std::size_t>(st.st_blocks) * 512, 2 * kMiB + 1);
}

}  // namespace
