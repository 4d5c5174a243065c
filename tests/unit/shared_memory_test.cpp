// Tests of SharedMemory, Value and Array: named and anonymous segments, the unlink policy, errors,
// and data written by forked children.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <list>
#include <memory>
#include <mproc/shared_memory.hpp>
#include <mutex>
#include <numeric>
#include <ranges>
#include <regex>
#include <string>
#include <system_error>
#include <vector>

#include "helpers/child.hpp"

namespace {

using mproc::SharedMemory;
using mproc_test::Child;
using mproc_test::run_in_child;
using namespace std::chrono_literals;

bool shm_exists(const std::string& name) {
  struct stat st {};
  return ::stat(("/dev/shm/" + name).c_str(), &st) == 0;
}

std::byte pattern(std::size_t i) { return static_cast<std::byte>((i * 131 + 7) & 0xff); }

// Every test names its segments "mproc_test_<pid>_..." (each test runs in its own process under
// ctest) and checks on the way out that none of them is left in /dev/shm.
class SharedMemoryTest : public ::testing::Test {
 protected:
  std::string prefix() const { return "mproc_test_" + std::to_string(getpid()) + "_"; }
  std::string name(const std::string& what) const { return prefix() + what; }

  std::vector<std::string> leftovers() const {
    std::vector<std::string> found;
    if (DIR* d = opendir("/dev/shm")) {
      while (dirent* e = readdir(d)) {
        std::string n = e->d_name;
        if (n.rfind(prefix(), 0) == 0) found.push_back(n);
      }
      closedir(d);
    }
    return found;
  }

  void TearDown() override {
    auto left = leftovers();
    EXPECT_TRUE(left.empty()) << "segment left in /dev/shm: " << (left.empty() ? "" : left[0]);
    for (const auto& n : left) shm_unlink(("/" + n).c_str());
  }
};

// Waits (bounded) for one byte on `fd`; true if it came.
bool wait_byte(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
  char c;
  return read(fd, &c, 1) == 1;
}

TEST_F(SharedMemoryTest, CreateThenAttachSeesTheSameBytes) {
  auto creator = SharedMemory::create(name("rt"), 1000);
  EXPECT_EQ(creator.size(), 1000u);
  EXPECT_EQ(creator.name(), name("rt"));
  EXPECT_TRUE(creator.owns_name());
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/shm/" + name("rt")).c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1000);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto b = creator.buf();
  ASSERT_EQ(b.size(), 1000u);
  EXPECT_TRUE(std::all_of(b.begin(), b.end(), [](std::byte x) { return x == std::byte{0}; }));
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = pattern(i);

  auto attacher = SharedMemory::attach(name("rt"));
  EXPECT_EQ(attacher.size(), 1000u);
  EXPECT_EQ(attacher.name(), name("rt"));
  EXPECT_FALSE(attacher.owns_name());
  auto a = attacher.buf();
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], pattern(i)) << "at " << i;
  a[999] = std::byte{0x5a};
  EXPECT_EQ(b[999], std::byte{0x5a});
}

TEST_F(SharedMemoryTest, LeadingSlashIsOptionalAndNotReported) {
  auto creator = SharedMemory::create("/" + name("slash"), 10);
  EXPECT_EQ(creator.name(), name("slash"));
  EXPECT_TRUE(shm_exists(name("slash")));
  auto a1 = SharedMemory::attach(name("slash"));
  auto a2 = SharedMemory::attach("/" + name("slash"));
  a1.buf()[3] = std::byte{42};
  EXPECT_EQ(a2.buf()[3], std::byte{42});
  EXPECT_EQ(a2.name(), name("slash"));
}

TEST_F(SharedMemoryTest, AttachToMissingNameThrowsENOENT) {
  try {
    (void)SharedMemory::attach(name("missing"));
    FAIL() << "attach did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find(name("missing")), std::string::npos) << e.what();
  }
}

TEST_F(SharedMemoryTest, CreateExistingNameThrowsEEXIST) {
  auto first = SharedMemory::create(name("dup"), 64);
  first.buf()[0] = std::byte{7};
  try {
    (void)SharedMemory::create(name("dup"), 128);
    FAIL() << "create did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::file_exists);
    EXPECT_NE(std::string(e.what()).find(name("dup")), std::string::npos) << e.what();
  }
  // The failed create neither removed nor resized the existing segment.
  ASSERT_TRUE(shm_exists(name("dup")));
  auto again = SharedMemory::attach(name("dup"));
  EXPECT_EQ(again.size(), 64u);
  EXPECT_EQ(again.buf()[0], std::byte{7});
}

TEST_F(SharedMemoryTest, SizeZeroThrowsValueError) {
  EXPECT_THROW((void)SharedMemory::create(name("zero"), 0), mproc::ValueError);
  EXPECT_THROW((void)SharedMemory::create(0), mproc::ValueError);
  EXPECT_THROW((void)SharedMemory::anonymous(0), mproc::ValueError);
  try {
    (void)SharedMemory::create(name("zero"), 0);
  } catch (const mproc::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("'size' must be a positive number"), std::string::npos);
  }
  EXPECT_FALSE(shm_exists(name("zero")));
}

TEST_F(SharedMemoryTest, InvalidNamesThrowValueError) {
  EXPECT_THROW((void)SharedMemory::create("", 8), mproc::ValueError);
  EXPECT_THROW((void)SharedMemory::create("///", 8), mproc::ValueError);
  EXPECT_THROW((void)SharedMemory::create(name("a/b"), 8), mproc::ValueError);
  EXPECT_THROW((void)SharedMemory::attach(""), mproc::ValueError);
  EXPECT_THROW((void)SharedMemory::attach(std::string("x\0y", 3)), mproc::ValueError);
}

TEST_F(SharedMemoryTest, AttachToEmptySegmentThrowsValueError) {
  const std::string path = "/" + name("empty");
  int fd = shm_open(path.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_THROW((void)SharedMemory::attach(name("empty")), mproc::ValueError);
  EXPECT_TRUE(shm_exists(name("empty")));  // attach never unlinks
  shm_unlink(path.c_str());
}

TEST_F(SharedMemoryTest, BufAfterCloseThrowsValueError) {
  auto shm = SharedMemory::create(name("closed"), 16);
  EXPECT_TRUE(shm.is_open());
  shm.close();
  EXPECT_FALSE(shm.is_open());
  try {
    (void)shm.buf();
    FAIL() << "buf() after close did not throw";
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(), "mproc::SharedMemory::buf: the segment is closed");
  }
  const SharedMemory& cref = shm;
  EXPECT_THROW((void)cref.buf(), mproc::ValueError);
  shm.close();  // idempotent
  EXPECT_EQ(shm.size(), 16u);
  EXPECT_EQ(shm.name(), name("closed"));
  // close() only unmaps: the name is still there until the creator is destroyed.
  EXPECT_TRUE(shm_exists(name("closed")));

  auto anon = SharedMemory::anonymous(16);
  anon.close();
  EXPECT_THROW((void)anon.buf(), mproc::ValueError);
}

TEST_F(SharedMemoryTest, CreatorDestructorUnlinksAttacherDoesNot) {
  {
    auto creator = SharedMemory::create(name("owner"), 32);
    {
      auto attacher = SharedMemory::attach(name("owner"));
      attacher.buf()[0] = std::byte{1};
    }
    EXPECT_TRUE(shm_exists(name("owner"))) << "the attacher's destructor unlinked the segment";
    EXPECT_EQ(creator.buf()[0], std::byte{1});
  }
  EXPECT_FALSE(shm_exists(name("owner"))) << "the creator's destructor left the segment";
}

TEST_F(SharedMemoryTest, ClosedCreatorStillUnlinksWhenDestroyed) {
  {
    auto creator = SharedMemory::create(name("closed_owner"), 32);
    creator.close();
    EXPECT_TRUE(shm_exists(name("closed_owner")));
  }
  EXPECT_FALSE(shm_exists(name("closed_owner")));
}

TEST_F(SharedMemoryTest, AttachedSegmentOutlivesItsCreatorsUnlink) {
  auto creator = SharedMemory::create(name("outlive"), 8);
  auto attacher = SharedMemory::attach(name("outlive"));
  creator = SharedMemory();  // destroys the creator: unlinks
  EXPECT_FALSE(shm_exists(name("outlive")));
  attacher.buf()[7] = std::byte{9};  // the mapping stays valid
  EXPECT_EQ(attacher.buf()[7], std::byte{9});
  EXPECT_FALSE(attacher.unlink());  // already gone
}

TEST_F(SharedMemoryTest, ReleaseNameLeavesTheSegmentForSomeoneElse) {
  {
    auto creator = SharedMemory::create(name("released"), 8);
    creator.release_name();
    EXPECT_FALSE(creator.owns_name());
  }
  ASSERT_TRUE(shm_exists(name("released")));
  auto later = SharedMemory::attach(name("released"));
  EXPECT_TRUE(later.unlink());
  EXPECT_FALSE(shm_exists(name("released")));
}

TEST_F(SharedMemoryTest, UnlinkIsTrueOnceThenFalse) {
  auto creator = SharedMemory::create(name("twice"), 8);
  EXPECT_TRUE(creator.unlink());
  EXPECT_FALSE(creator.owns_name());
  EXPECT_FALSE(shm_exists(name("twice")));
  EXPECT_FALSE(creator.unlink());
  EXPECT_THROW((void)SharedMemory::attach(name("twice")), std::system_error);
  creator.buf()[0] = std::byte{3};  // still mapped
  EXPECT_EQ(creator.buf()[0], std::byte{3});
}

TEST_F(SharedMemoryTest, UnlinkLeavesASegmentThatReusedTheNameAlone) {
  auto first = SharedMemory::create(name("reuse"), 8);
  auto old_attacher = SharedMemory::attach(name("reuse"));
  ASSERT_TRUE(first.unlink());
  auto second = SharedMemory::create(name("reuse"), 16);
  // `old_attacher` knows the name, but it now names another segment: nothing is removed.
  EXPECT_FALSE(old_attacher.unlink());
  EXPECT_TRUE(shm_exists(name("reuse")));
  first = SharedMemory();  // the first creator no longer owns the name either
  EXPECT_TRUE(shm_exists(name("reuse")));
  EXPECT_EQ(SharedMemory::attach(name("reuse")).size(), 16u);
}

TEST_F(SharedMemoryTest, MoveTransfersTheMappingAndTheName) {
  auto a = SharedMemory::create(name("move"), 8);
  a.buf()[0] = std::byte{11};
  SharedMemory b(std::move(a));
  EXPECT_THROW((void)a.buf(), mproc::ValueError);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(a.size(), 0u);                         // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(a.name().empty());                   // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(a.unlink());                        // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(b.owns_name());
  EXPECT_EQ(b.buf()[0], std::byte{11});

  auto c = SharedMemory::create(name("move2"), 8);
  c = std::move(b);  // the segment `c` created is released (unlinked) first
  EXPECT_FALSE(shm_exists(name("move2")));
  EXPECT_TRUE(shm_exists(name("move")));
  EXPECT_EQ(c.name(), name("move"));
  c = SharedMemory();
  EXPECT_FALSE(shm_exists(name("move")));
}

TEST_F(SharedMemoryTest, GeneratedNameLooksLikePythonsAndIsUnlinked) {
  std::string n;
  {
    auto shm = SharedMemory::create(100);
    n = shm.name();
    EXPECT_TRUE(std::regex_match(n, std::regex("psm_[0-9a-f]{8}"))) << n;
    EXPECT_TRUE(shm_exists(n));
    EXPECT_EQ(SharedMemory::attach(n).size(), 100u);
    auto other = SharedMemory::create(100);
    EXPECT_NE(other.name(), n);
  }
  EXPECT_FALSE(shm_exists(n));
}

TEST_F(SharedMemoryTest, AnonymousSegmentHasNoName) {
  auto shm = SharedMemory::anonymous(5000);
  EXPECT_TRUE(shm.name().empty());
  EXPECT_EQ(shm.size(), 5000u);
  EXPECT_EQ(shm.buf().size(), 5000u);
  EXPECT_FALSE(shm.owns_name());
  EXPECT_FALSE(shm.unlink());
  auto b = shm.buf();
  EXPECT_TRUE(std::all_of(b.begin(), b.end(), [](std::byte x) { return x == std::byte{0}; }));
}

TEST_F(SharedMemoryTest, ForkedChildWritesIntoAnonymousSegment) {
  auto shm = SharedMemory::anonymous(4096);
  int rc = run_in_child([&] {
    auto b = shm.buf();
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = pattern(i);
    return 0;
  });
  ASSERT_EQ(rc, 0);
  auto b = shm.buf();
  for (std::size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b[i], pattern(i)) << "at " << i;
}

TEST_F(SharedMemoryTest, ForkedChildAttachesByNameAndWrites) {
  auto shm = SharedMemory::create(name("child"), 4096);
  const std::string n = name("child");
  int rc = run_in_child([&] {
    auto mine = SharedMemory::attach(n);
    if (mine.size() != 4096) return 2;
    auto b = mine.buf();
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = pattern(i);
    return 0;
  });
  ASSERT_EQ(rc, 0);
  auto b = shm.buf();
  for (std::size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b[i], pattern(i)) << "at " << i;
  EXPECT_TRUE(shm_exists(n));  // the child's attacher did not unlink
}

TEST_F(SharedMemoryTest, ForkedCopyOfTheCreatorNeverUnlinks) {
  auto shm = SharedMemory::create(name("forked_owner"), 64);
  int rc = run_in_child([&] {
    {
      SharedMemory inherited = std::move(shm);  // destroyed in the child
      if (!inherited.owns_name()) return 2;
      inherited.buf()[0] = std::byte{0x42};
    }
    return 0;
  });
  ASSERT_EQ(rc, 0);
  EXPECT_TRUE(shm_exists(name("forked_owner"))) << "a forked child unlinked its parent's segment";
  EXPECT_EQ(shm.buf()[0], std::byte{0x42});
}

TEST_F(SharedMemoryTest, KilledAttacherLeavesSegmentIntactAndNothingLeaks) {
  auto shm = SharedMemory::create(name("killed"), 4096);
  const std::string n = name("killed");
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  Child child([&] {
    ::close(ready[0]);
    auto mine = SharedMemory::attach(n);
    mine.buf()[100] = std::byte{0x77};
    if (write(ready[1], "r", 1) != 1) return 2;
    for (;;) pause();  // attached until killed
  });
  ::close(ready[1]);
  ASSERT_TRUE(wait_byte(ready[0], 30s)) << "child did not attach";
  ::close(ready[0]);
  child.kill(SIGKILL);
  EXPECT_EQ(child.wait(30s), -SIGKILL);
  EXPECT_TRUE(shm_exists(n));
  EXPECT_EQ(shm.buf()[100], std::byte{0x77});
  // The fixture checks that the creator's destructor removes it.
}

// ---- Absurd sizes and names -------------------------------------------------------------------

constexpr std::size_t kMaxSize = std::numeric_limits<std::size_t>::max();

// Sizes that no machine can give: each must be refused with std::system_error (ENOMEM, or EFBIG for
// a named segment larger than a file may be), never wrap around to a small or null mapping.
std::vector<std::size_t> absurd_sizes() {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return {kMaxSize,
          kMaxSize - 1,
          kMaxSize - page + 2,  // rounds up to a page past SIZE_MAX
          std::size_t{1} << 63,
          (std::size_t{1} << 63) - 1,  // the largest off_t
          std::size_t{1} << 62,
          std::size_t{1} << 50};  // 1 PiB
}

// A failed call's outcome, computed in a child so that a crash shows as an exit status.
enum Outcome : int {
  kSystemError = 10,  // std::system_error with an expected code and the size in its message
  kWrongCode = 11,
  kNoSizeInMessage = 12,
  kValueError = 13,
  kNoThrow = 14,
  kOtherException = 15,
};

template <class F>
int outcome_of(F f, std::size_t size, std::initializer_list<std::errc> codes) {
  try {
    f();
    return kNoThrow;
  } catch (const std::system_error& e) {
    bool known = false;
    for (auto c : codes) known = known || e.code() == c;
    if (!known) {
      std::fprintf(stderr, "unexpected code for %zu: %s\n", size, e.what());
      return kWrongCode;
    }
    if (std::string(e.what()).find(std::to_string(size)) == std::string::npos) {
      std::fprintf(stderr, "size missing from: %s\n", e.what());
      return kNoSizeInMessage;
    }
    return kSystemError;
  } catch (const mproc::ValueError& e) {
    return kValueError;
  } catch (...) {
    return kOtherException;
  }
}

TEST_F(SharedMemoryTest, AbsurdAnonymousSizesThrowSystemError) {
  for (std::size_t size : absurd_sizes()) {
    int rc = run_in_child([size] {
      return outcome_of([&] { (void)SharedMemory::anonymous(size); }, size,
                        {std::errc::not_enough_memory});
    });
    EXPECT_EQ(rc, kSystemError) << "SharedMemory::anonymous(" << size << ")";
  }
}

TEST_F(SharedMemoryTest, AbsurdNamedSizesThrowSystemErrorAndLeaveNoName) {
  for (std::size_t size : absurd_sizes()) {
    const std::string n = name("absurd");
    int rc = run_in_child([&] {
      return outcome_of(
          [&] { (void)SharedMemory::create(n, size); }, size,
          {std::errc::not_enough_memory, std::errc::file_too_large, std::errc::no_space_on_device});
    });
    EXPECT_EQ(rc, kSystemError) << "SharedMemory::create(name, " << size << ")";
    EXPECT_FALSE(shm_exists(n)) << "a failed create left its name, size " << size;
    rc = run_in_child([&] {
      return outcome_of(
          [&] { (void)SharedMemory::create(size); }, size,
          {std::errc::not_enough_memory, std::errc::file_too_large, std::errc::no_space_on_device});
    });
    EXPECT_EQ(rc, kSystemError) << "SharedMemory::create(" << size << ")";
  }
}

// Sizes just past the 32-bit range work: nothing on the way truncates a size to 32 bits.
TEST_F(SharedMemoryTest, SizePastFourGiBWorksOrThrowsENOMEM) {
  const std::size_t size = (std::size_t{1} << 32) + 3;
  try {
    auto shm = SharedMemory::anonymous(size);
    ASSERT_EQ(shm.size(), size);
    auto b = shm.buf();
    ASSERT_EQ(b.size(), size);
    b[size - 1] = std::byte{0x3c};
    b[std::size_t{1} << 32] = std::byte{0x3d};
    b[0] = std::byte{0x3e};
    EXPECT_EQ(b[size - 1], std::byte{0x3c});
    EXPECT_EQ(b[std::size_t{1} << 32], std::byte{0x3d});
    EXPECT_EQ(b[0], std::byte{0x3e});
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::not_enough_memory) << e.what();  // a small machine
  }
}

TEST_F(SharedMemoryTest, OneByteSegmentsWork) {
  auto anon = SharedMemory::anonymous(1);
  EXPECT_EQ(anon.size(), 1u);
  anon.buf()[0] = std::byte{1};
  auto named = SharedMemory::create(name("one"), 1);
  EXPECT_EQ(named.size(), 1u);
  named.buf()[0] = std::byte{2};
  EXPECT_EQ(SharedMemory::attach(name("one")).buf()[0], std::byte{2});
}

TEST(Array, AbsurdSizesThrowInsteadOfCrashing) {
  for (std::size_t n : absurd_sizes()) {
    int rc = run_in_child([n] {
      return outcome_of([&] { mproc::Array<char> a(n); }, n, {std::errc::not_enough_memory});
    });
    EXPECT_EQ(rc, kSystemError) << "Array<char>(" << n << ")";
    rc = run_in_child([n] {
      return outcome_of([&] { mproc::Array<char> a(n, mproc::no_lock); }, n,
                        {std::errc::not_enough_memory});
    });
    EXPECT_EQ(rc, kSystemError) << "Array<char>(" << n << ", no_lock)";
  }
  // n * sizeof(T) just below and just above SIZE_MAX (a run-time value, as absurd sizes are).
  volatile std::size_t runtime_below = kMaxSize / sizeof(std::uint64_t);
  const std::size_t below = runtime_below;
  int rc = run_in_child([below] {
    return outcome_of([&] { mproc::Array<std::uint64_t> a(below); }, below * sizeof(std::uint64_t),
                      {std::errc::not_enough_memory});
  });
  EXPECT_EQ(rc, kSystemError) << "Array<uint64_t>(SIZE_MAX / 8)";
  for (std::size_t n : {below + 1, kMaxSize / 2 + 1, kMaxSize}) {
    rc = run_in_child([n] { return outcome_of([&] { mproc::Array<std::uint64_t> a(n); }, n, {}); });
    EXPECT_EQ(rc, kValueError) << "Array<uint64_t>(" << n << ")";
  }
}

// A sized forward range of `n` zeros that is never iterated in full: its size alone is the test.
// (std::views::iota does not compile with clang 14 on libstdc++ 12.)
class Zeros {
 public:
  explicit Zeros(std::ptrdiff_t n) : n_(n) {}
  class iterator {
   public:
    using value_type = int;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(std::ptrdiff_t i) : i_(i) {}
    int operator*() const { return 0; }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    iterator operator++(int) {
      iterator old = *this;
      ++i_;
      return old;
    }
    bool operator==(const iterator& o) const { return i_ == o.i_; }
    friend difference_type operator-(const iterator& a, const iterator& b) { return a.i_ - b.i_; }

   private:
    std::ptrdiff_t i_ = 0;
  };
  iterator begin() const { return iterator(0); }
  iterator end() const { return iterator(n_); }

 private:
  std::ptrdiff_t n_;
};
static_assert(std::ranges::forward_range<Zeros> && std::ranges::sized_range<Zeros>);

TEST(Array, AbsurdRangeSizesThrowInsteadOfCrashing) {
  constexpr auto kMaxDiff = std::numeric_limits<std::ptrdiff_t>::max();
  int rc = run_in_child([] {
    return outcome_of(
        [&] {
          const Zeros r(kMaxDiff);
          mproc::Array<char> a(r);
        },
        static_cast<std::size_t>(kMaxDiff), {std::errc::not_enough_memory});
  });
  EXPECT_EQ(rc, kSystemError) << "Array<char>(a range of 2^63 - 1)";
  rc = run_in_child([] {
    return outcome_of(
        [&] {
          const Zeros r(std::ptrdiff_t{1} << 61);  // 2^64 bytes
          mproc::Array<double> a(r);
        },
        0, {});
  });
  EXPECT_EQ(rc, kValueError) << "Array<double>(a range of 2^61): the byte count overflows";
  rc = run_in_child([] {
    return outcome_of(
        [&] {
          const Zeros r(std::ptrdiff_t{1} << 61);
          mproc::Array<std::uint32_t> a(r);
        },
        std::size_t{1} << 63, {std::errc::not_enough_memory});
  });
  EXPECT_EQ(rc, kSystemError) << "Array<uint32_t>(a range of 2^61)";
  // A range that fits works, and only its elements are written.
  const Zeros five(5);
  mproc::Array<long> small(five, mproc::no_lock);
  EXPECT_EQ(small.size(), 5u);
  EXPECT_TRUE(std::all_of(small.begin(), small.end(), [](long x) { return x == 0; }));
}

TEST_F(SharedMemoryTest, DotNamesThrowValueErrorNamingTheProblem) {
  for (std::string bad : {".", "..", "/.", "//.."}) {
    for (int op = 0; op < 2; ++op) {
      try {
        if (op == 0) {
          (void)SharedMemory::create(bad, 8);
        } else {
          (void)SharedMemory::attach(bad);
        }
        ADD_FAILURE() << (op == 0 ? "create" : "attach") << "(\"" << bad << "\") did not throw";
      } catch (const mproc::ValueError& e) {
        EXPECT_NE(std::string(e.what()).find("is not a valid segment name"), std::string::npos)
            << e.what();
      } catch (const std::exception& e) {
        ADD_FAILURE() << (op == 0 ? "create" : "attach") << "(\"" << bad
                      << "\") threw something else: " << e.what();
      }
    }
  }
}

TEST_F(SharedMemoryTest, NameLongerThanNameMaxThrowsValueError) {
  std::string longest = name("long_");
  longest.resize(NAME_MAX, 'x');
  {
    auto ok = SharedMemory::create(longest, 16);  // exactly NAME_MAX characters: fine
    EXPECT_EQ(ok.name(), longest);
    EXPECT_EQ(SharedMemory::attach("/" + longest).size(), 16u);
  }
  const std::string too_long = longest + "y";
  for (int op = 0; op < 2; ++op) {
    try {
      if (op == 0) {
        (void)SharedMemory::create(too_long, 16);
      } else {
        (void)SharedMemory::attach(too_long);
      }
      ADD_FAILURE() << "a name of " << too_long.size() << " characters was accepted";
    } catch (const mproc::ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("longer than NAME_MAX"), std::string::npos) << e.what();
    }
  }
  EXPECT_FALSE(shm_exists(too_long.substr(0, NAME_MAX)));
}

// Every OS error names the operation, the segment (name and size) and the errno.
TEST_F(SharedMemoryTest, ErrorsNameOperationSegmentSizeAndErrno) {
  auto first = SharedMemory::create(name("msg"), 64);
  try {
    (void)SharedMemory::create(name("msg"), 128);
    FAIL() << "create did not throw";
  } catch (const std::system_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("mproc::SharedMemory::create"), std::string::npos) << what;
    EXPECT_NE(what.find(name("msg")), std::string::npos) << what;
    EXPECT_NE(what.find("128 bytes"), std::string::npos) << what;
    EXPECT_NE(what.find("EEXIST"), std::string::npos) << what;
  }
  try {
    (void)SharedMemory::attach(name("nothere"));
    FAIL() << "attach did not throw";
  } catch (const std::system_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("mproc::SharedMemory::attach"), std::string::npos) << what;
    EXPECT_NE(what.find(name("nothere")), std::string::npos) << what;
    EXPECT_NE(what.find("ENOENT"), std::string::npos) << what;
  }
  try {
    (void)SharedMemory::anonymous(kMaxSize);
    FAIL() << "anonymous(SIZE_MAX) did not throw";
  } catch (const std::system_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("mproc::SharedMemory::anonymous"), std::string::npos) << what;
    EXPECT_NE(what.find(std::to_string(kMaxSize)), std::string::npos) << what;
    EXPECT_NE(what.find("ENOMEM"), std::string::npos) << what;
  }
}

// ---- Value --------------------------------------------------------------------------------------

TEST(Value, DefaultsToZeroAndCopiesShareTheValue) {
  mproc::Value<int> v;
  EXPECT_EQ(v.get(), 0);
  EXPECT_TRUE(v.has_lock());
  mproc::Value<int> copy = v;
  copy.set(41);
  EXPECT_EQ(v.get(), 41);
  ++v.get_obj();
  EXPECT_EQ(copy.get(), 42);
  EXPECT_EQ(&v.get_lock(), &v.get_lock());
}

TEST(Value, WithoutLockGetLockThrowsValueError) {
  mproc::Value<double> v(2.5, mproc::no_lock);
  EXPECT_FALSE(v.has_lock());
  EXPECT_EQ(v.get(), 2.5);
  v.set(-1.0);
  EXPECT_EQ(v.get(), -1.0);
  try {
    (void)v.get_lock();
    FAIL() << "get_lock() did not throw";
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(), "mproc::Value::get_lock(): created with mproc::no_lock, it has no lock");
  }
}

struct Triple {
  double x, y, z;
};

TEST(Value, HoldsAStructAndChildSetsIt) {
  mproc::Value<Triple> locked(Triple{1, 2, 3});
  mproc::Value<Triple> raw(Triple{}, mproc::no_lock);
  int rc = run_in_child([&] {
    locked.set(Triple{4, 5, 6});
    raw.set(Triple{7, 8, 9});
    return 0;
  });
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(locked.get().z, 6.0);
  EXPECT_EQ(raw.get().x, 7.0);
}

TEST(Value, SharesAGivenLock) {
  mproc::RLock shared;
  mproc::Value<int> a(1, shared);
  mproc::Value<long> b(2, shared);
  std::scoped_lock g(a.get_lock());
  EXPECT_TRUE(b.get_lock().is_owned());
  EXPECT_TRUE(shared.is_owned());
  b.set(b.get() + 1);  // get/set re-enter the RLock held here
  EXPECT_EQ(b.get(), 3);
}

TEST(Value, IncrementsFromEightProcessesUnderTheLockAreExact) {
  constexpr int kProcs = 8;
  constexpr int kIters = 10000;
  mproc::Value<long> v(0);
  std::vector<std::unique_ptr<Child>> children;
  for (int p = 0; p < kProcs; ++p) {
    children.push_back(std::make_unique<Child>([v] {
      for (int i = 0; i < kIters; ++i) {
        std::scoped_lock g(v.get_lock());
        v.set(v.get() + 1);
      }
      return 0;
    }));
  }
  for (auto& c : children) EXPECT_EQ(c->wait(50s), 0);
  EXPECT_EQ(v.get(), long{kProcs} * kIters);
}

struct TwoHalves {  // 8 bytes: one lock-free access on every supported platform
  std::uint32_t a, b;
};
struct Sixteen {  // 16 bytes: not always lock-free (x86-64 without -mcx16): plain copies
  std::uint64_t a, b;
};

TEST(Value, WithoutLockTheAtomicPathIsChosenAsStdAtomicRefWould) {
  // detail::atomic_copyable_v decides between one atomic access and a plain copy; it must agree
  // with std::atomic_ref<T>::is_always_lock_free, which Value used before.
  EXPECT_EQ(mproc::detail::atomic_copyable_v<int>, std::atomic_ref<int>::is_always_lock_free);
  EXPECT_EQ(mproc::detail::atomic_copyable_v<bool>, std::atomic_ref<bool>::is_always_lock_free);
  EXPECT_EQ(mproc::detail::atomic_copyable_v<double>, std::atomic_ref<double>::is_always_lock_free);
  EXPECT_EQ(mproc::detail::atomic_copyable_v<int*>, std::atomic_ref<int*>::is_always_lock_free);
  EXPECT_EQ(mproc::detail::atomic_copyable_v<TwoHalves>,
            std::atomic_ref<TwoHalves>::is_always_lock_free);
  EXPECT_EQ(mproc::detail::atomic_copyable_v<Sixteen>,
            std::atomic_ref<Sixteen>::is_always_lock_free);
  EXPECT_EQ(mproc::detail::atomic_copyable_v<Triple>, std::atomic_ref<Triple>::is_always_lock_free);
  EXPECT_TRUE(mproc::detail::atomic_copyable_v<TwoHalves>);
  EXPECT_FALSE(mproc::detail::atomic_copyable_v<Triple>);
}

TEST(Value, WithoutLockAtomicLoadAndStoreKeepEveryByte) {
  mproc::Value<TwoHalves> pair(TwoHalves{1, 2}, mproc::no_lock);
  EXPECT_EQ(pair.get().a, 1u);
  EXPECT_EQ(pair.get().b, 2u);
  pair.set(TwoHalves{0xdeadbeef, 0x01234567});
  EXPECT_EQ(pair.get_obj().a, 0xdeadbeefu);
  EXPECT_EQ(pair.get_obj().b, 0x01234567u);
  mproc::Value<bool> flag(true, mproc::no_lock);
  EXPECT_TRUE(flag.get());
  flag.set(false);
  EXPECT_FALSE(flag.get_obj());
  mproc::Value<float> f(0.25f, mproc::no_lock);
  f.set(-3.5f);
  EXPECT_EQ(f.get(), -3.5f);
  int target = 0;
  mproc::Value<int*> ptr(nullptr, mproc::no_lock);
  ptr.set(&target);
  EXPECT_EQ(ptr.get(), &target);
  mproc::Value<Sixteen> wide(Sixteen{~0ull, 7}, mproc::no_lock);  // the plain-copy path
  wide.set(Sixteen{5, ~0ull});
  EXPECT_EQ(wide.get().a, 5u);
  EXPECT_EQ(wide.get().b, ~0ull);
}

TEST(Value, WithoutLockAReaderNeverSeesHalfAWrite) {
  // A child writes {i, i} over and over; every value read here has both halves equal.
  mproc::Value<TwoHalves> v(TwoHalves{0, 0}, mproc::no_lock);
  mproc::Value<int> stop(0, mproc::no_lock);
  Child writer([v, stop] {
    for (std::uint32_t i = 1; stop.get() == 0; ++i) v.set(TwoHalves{i, i});
    return 0;
  });
  const auto give_up = std::chrono::steady_clock::now() + 30s;
  while (v.get().a == 0) {  // until the writer has started
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "the writer never wrote";
  }
  for (int n = 0; n < 200000; ++n) {
    const TwoHalves seen = v.get();
    ASSERT_EQ(seen.a, seen.b) << "after " << n << " reads";
  }
  stop.set(1);
  EXPECT_EQ(writer.wait(30s), 0);
}

TEST(Array, ErrorsNameTheProblem) {
  mproc::Array<std::uint64_t> a{1, 2};
  try {
    (void)a.at(2);
    FAIL() << "at(2) did not throw";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "mproc::Array::at: index out of range");
  }
  try {
    mproc::Array<std::uint64_t> big(std::size_t{1} << 62);
    FAIL() << "Array(2^62) did not throw";
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(),
                 "mproc::Array: 4611686018427387904 elements of 8 bytes do not fit in memory (the "
                 "size overflows std::size_t)");
  }
  try {
    mproc::Array<std::uint64_t> none(std::size_t{1}, mproc::no_lock);
    (void)none.get_lock();
    FAIL() << "get_lock() did not throw";
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(), "mproc::Array::get_lock(): created with mproc::no_lock, it has no lock");
  }
}

// ---- Array --------------------------------------------------------------------------------------

TEST(Array, ConstructsLikeAVector) {
  mproc::Array<int> zeros(5);
  EXPECT_EQ(zeros.size(), 5u);
  EXPECT_TRUE(std::all_of(zeros.begin(), zeros.end(), [](int x) { return x == 0; }));

  mproc::Array<int> listed{5};
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0], 5);

  std::vector<double> src{1.5, 2.5, 3.5};
  mproc::Array<double> from_vec(src);
  EXPECT_EQ(std::vector<double>(from_vec.begin(), from_vec.end()), src);

  // A forward range that is not contiguous, of another element type (int -> long).
  std::list<int> digits{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  mproc::Array<long> from_list(digits, mproc::no_lock);
  EXPECT_EQ(from_list.size(), 10u);
  EXPECT_EQ(std::accumulate(from_list.begin(), from_list.end(), 0L), 45L);
  EXPECT_EQ(from_list[9], 9L);
  EXPECT_FALSE(from_list.has_lock());
  EXPECT_THROW((void)from_list.get_lock(), mproc::ValueError);

  mproc::Array<int> empty(0);
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.begin(), empty.end());
}

struct WithMember {
  int m;
};

TEST(Array, ElementsStartValueInitialised) {
  mproc::Array<double> d(1000);
  EXPECT_TRUE(std::all_of(d.begin(), d.end(), [](double x) { return x == 0.0; }));
  mproc::Array<int*> p(10);
  EXPECT_TRUE(std::all_of(p.begin(), p.end(), [](int* x) { return x == nullptr; }));
  mproc::Array<int WithMember::*> mp(10);  // a null pointer to member is not all zero bits
  EXPECT_TRUE(std::all_of(mp.begin(), mp.end(), [](int WithMember::*x) { return x == nullptr; }));
  mproc::Array<Triple> t(10);
  EXPECT_TRUE(std::all_of(t.begin(), t.end(), [](const Triple& x) { return x.z == 0.0; }));
}

TEST(Array, AtThrowsOutOfRangeAndCopiesShareElements) {
  mproc::Array<int> a{1, 2, 3};
  EXPECT_EQ(a.at(2), 3);
  EXPECT_THROW((void)a.at(3), std::out_of_range);
  mproc::Array<int> b = a;
  b[0] = 10;
  EXPECT_EQ(a[0], 10);
  EXPECT_EQ(a.span().data(), b.data());
  EXPECT_EQ(a.get_obj().size(), 3u);
  EXPECT_EQ(&a.get_lock(), &a.get_lock());
}

TEST(Array, TooLargeThrowsValueError) {
  EXPECT_THROW(mproc::Array<std::uint64_t>(std::size_t{1} << 62), mproc::ValueError);
}

TEST(Array, FilledByChildrenEachWritingItsSlice) {
  constexpr std::size_t kProcs = 4;
  constexpr std::size_t kPer = 2500;
  mproc::Array<std::uint32_t> a(kProcs * kPer);
  std::vector<std::unique_ptr<Child>> children;
  for (std::size_t p = 0; p < kProcs; ++p) {
    children.push_back(std::make_unique<Child>([a, p] {
      for (std::size_t i = p * kPer; i < (p + 1) * kPer; ++i)
        a[i] = static_cast<std::uint32_t>(i * 3 + p);
      return 0;
    }));
  }
  for (auto& c : children) EXPECT_EQ(c->wait(30s), 0);
  for (std::size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(a[i], static_cast<std::uint32_t>(i * 3 + i / kPer)) << "at " << i;
}

TEST(Array, ChildrenAddUnderTheLock) {
  constexpr int kProcs = 4;
  constexpr int kIters = 5000;
  mproc::Array<long> a{0, 0};
  std::vector<std::unique_ptr<Child>> children;
  for (int p = 0; p < kProcs; ++p) {
    children.push_back(std::make_unique<Child>([a] {
      for (int i = 0; i < kIters; ++i) {
        std::scoped_lock g(a.get_lock());
        a[0] += 1;
        a[1] += 2;
      }
      return 0;
    }));
  }
  for (auto& c : children) EXPECT_EQ(c->wait(50s), 0);
  EXPECT_EQ(a[0], long{kProcs} * kIters);
  EXPECT_EQ(a[1], 2L * kProcs * kIters);
}

}  // namespace
