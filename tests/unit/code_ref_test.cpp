// Code addresses as (image, offset) in one process (<mproc/detail/travel.hpp>, src/image.cpp): the
// sender's table (code_ref_of, image_count, image_records) and the receiver's (learn_images,
// resolve_code) round trip functions of the main executable, of libc and of a dlopen'ed library;
// addresses that are not code, hostile records and references are refused with the documented
// errors; threads racing on first use agree. The fresh-image side is code_ref_image_test.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mproc/detail/travel.hpp>
#include <mproc/errors.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "helpers/watchdog.hpp"
#include "posix/loaded_images.hpp"

namespace {

using mproc::detail::CodeRef;
using mproc::detail::ImageRecord;
using PluginFn = int (*)(int);

// Functions of the main executable (noinline, so that each has its own address).
__attribute__((noinline)) int triple(int x) { return 3 * x; }
__attribute__((noinline)) int add_five(int x) { return x + 5; }

int g_data = 42;  // data, not code

const void* addr(PluginFn f) { return reinterpret_cast<const void*>(f); }

// A library's handle, closed at the end of the test (pinned images stay loaded regardless).
struct Lib {
  explicit Lib(const char* path, int flags = RTLD_NOW | RTLD_LOCAL) : h(dlopen(path, flags)) {}
  ~Lib() {
    if (h != nullptr) dlclose(h);
  }
  Lib(const Lib&) = delete;
  Lib& operator=(const Lib&) = delete;
  PluginFn fn() const {
    return reinterpret_cast<PluginFn>(dlsym(h, "mproc_test_plugin_value"));  // NOLINT
  }
  void* h;
};

ImageRecord record_of(const CodeRef& ref) {
  const auto records = mproc::detail::image_records(ref.image);
  EXPECT_FALSE(records.empty());
  return records.empty() ? ImageRecord{} : records.front();
}

std::string exe_path() {
  std::string p;
  EXPECT_FALSE(mproc::detail::executable_path(p));
  return p;
}

// Sends, learns and resolves `f` in this process; returns the resolved function.
PluginFn round_trip(PluginFn f) {
  const CodeRef ref = mproc::detail::code_ref_of(addr(f));
  mproc::detail::learn_images(mproc::detail::image_records(0));
  return reinterpret_cast<PluginFn>(const_cast<void*>(mproc::detail::resolve_code(ref)));
}

TEST(CodeRef, RoundTripsAFunctionOfTheMainExecutable) {
  const CodeRef ref = mproc::detail::code_ref_of(addr(&triple));
  const ImageRecord rec = record_of(ref);
  EXPECT_EQ(rec.index, ref.image);
  EXPECT_EQ(rec.path, exe_path());
  EXPECT_GE(rec.build_id.size(), 8u);
  EXPECT_NE(rec.build_id.rfind("code-hash:", 0), 0u) << "this test binary has a GNU build-id";
  const PluginFn back = round_trip(&triple);
  EXPECT_EQ(back, &triple);
  EXPECT_EQ(back(14), 42);
}

TEST(CodeRef, RoundTripsAFunctionOfLibc) {
  Lib libc("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  ASSERT_NE(libc.h, nullptr);
  const auto f = reinterpret_cast<PluginFn>(dlsym(libc.h, "abs"));  // NOLINT
  ASSERT_NE(f, nullptr);
  const CodeRef ref = mproc::detail::code_ref_of(addr(f));
  const ImageRecord rec = record_of(ref);
  EXPECT_NE(rec.path.find("libc.so"), std::string::npos) << rec.path;
  EXPECT_EQ(rec.path[0], '/');
  EXPECT_NE(rec.path, exe_path());
  const PluginFn back = round_trip(f);
  EXPECT_EQ(back, f);
  EXPECT_EQ(back(-17), 17);
}

TEST(CodeRef, RoundTripsAFunctionOfADlopenedLibrary) {
  Lib plugin(MPROC_TEST_PLUGIN_A);
  ASSERT_NE(plugin.h, nullptr) << dlerror();
  const PluginFn f = plugin.fn();
  ASSERT_NE(f, nullptr);
  const CodeRef ref = mproc::detail::code_ref_of(addr(f));
  EXPECT_EQ(record_of(ref).path, std::string(MPROC_TEST_PLUGIN_A));
  const PluginFn back = round_trip(f);
  EXPECT_EQ(back, f);
  EXPECT_EQ(back(3), 1021);
}

TEST(CodeRef, RepeatedCallsGiveTheSameReferenceAndOneRecordPerImage) {
  const std::uint32_t before = mproc::detail::image_count();
  const CodeRef a = mproc::detail::code_ref_of(addr(&triple));
  const CodeRef b = mproc::detail::code_ref_of(addr(&add_five));
  const CodeRef a2 = mproc::detail::code_ref_of(addr(&triple));
  EXPECT_EQ(a.image, b.image);
  EXPECT_EQ(a.image, a2.image);
  EXPECT_EQ(a.offset, a2.offset);
  EXPECT_NE(a.offset, b.offset);
  EXPECT_EQ(b.offset - a.offset, reinterpret_cast<std::uintptr_t>(&add_five) -
                                     reinterpret_cast<std::uintptr_t>(&triple));
  EXPECT_LE(mproc::detail::image_count(), before + 1);

  Lib plugin(MPROC_TEST_PLUGIN_A);
  ASSERT_NE(plugin.h, nullptr);
  const CodeRef p = mproc::detail::code_ref_of(addr(plugin.fn()));
  EXPECT_NE(p.image, a.image);
  const CodeRef a3 = mproc::detail::code_ref_of(addr(&triple));  // another image, then back
  EXPECT_EQ(a3.image, a.image);
  EXPECT_EQ(a3.offset, a.offset);
  const std::uint32_t n = mproc::detail::image_count();
  ASSERT_GT(n, p.image);
  const auto tail = mproc::detail::image_records(p.image);
  ASSERT_EQ(tail.size(), n - p.image);
  for (std::size_t i = 0; i < tail.size(); ++i) EXPECT_EQ(tail[i].index, p.image + i);
  EXPECT_EQ(tail[0].path, std::string(MPROC_TEST_PLUGIN_A));
  EXPECT_TRUE(mproc::detail::image_records(n).empty());
  EXPECT_TRUE(mproc::detail::image_records(n + 100).empty());
  EXPECT_EQ(mproc::detail::image_records(0).size(), n);
}

// A library loaded by a relative name (the loader keeps "./libcopy.so") is recorded by the
// absolute path of the directory it was loaded from, which stays right after the working
// directory changes.
TEST(CodeRef, ALibraryLoadedByARelativeNameIsRecordedByItsAbsolutePath) {
  namespace fs = std::filesystem;
  std::string templ = (fs::temp_directory_path() / "mproc-code-ref-XXXXXX").string();
  ASSERT_NE(mkdtemp(templ.data()), nullptr);
  const fs::path dir = templ;
  fs::copy_file(MPROC_TEST_PLUGIN_A, dir / "libcopy.so");
  const fs::path before = fs::current_path();
  fs::current_path(dir);
  Lib plugin("./libcopy.so");
  fs::current_path(before);
  ASSERT_NE(plugin.h, nullptr) << dlerror();
  const CodeRef ref = mproc::detail::code_ref_of(addr(plugin.fn()));
  const std::string path = record_of(ref).path;
  std::error_code ec;
  EXPECT_TRUE(fs::equivalent(path, dir / "libcopy.so", ec)) << path;
  EXPECT_EQ(path[0], '/') << path;
  EXPECT_EQ(round_trip(plugin.fn())(1), 1007);
  fs::remove_all(dir, ec);
}

TEST(CodeRef, AnAddressThatIsNotCodeIsAValueError) {
  const std::uint32_t before = mproc::detail::image_count();
  auto heap = std::make_unique<int>(1);
  int stack = 2;
  EXPECT_THROW(mproc::detail::code_ref_of(heap.get()), mproc::ValueError);
  EXPECT_THROW(mproc::detail::code_ref_of(&stack), mproc::ValueError);
  EXPECT_THROW(mproc::detail::code_ref_of(&g_data), mproc::ValueError);
  EXPECT_THROW(mproc::detail::code_ref_of(nullptr), mproc::ValueError);
  try {
    mproc::detail::code_ref_of(&stack);
  } catch (const mproc::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("is not code of a loaded image"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(mproc::detail::image_count(), before) << "nothing was added";
}

TEST(CodeRef, AnImageOnceSentStaysLoadedAfterDlclose) {
  PluginFn f = nullptr;
  CodeRef ref;
  {
    Lib plugin(MPROC_TEST_PLUGIN_B);
    ASSERT_NE(plugin.h, nullptr);
    f = plugin.fn();
    ref = mproc::detail::code_ref_of(addr(f));
  }  // dlclose: the last reference the program held
  Lib again(MPROC_TEST_PLUGIN_B, RTLD_LAZY | RTLD_NOLOAD);
  EXPECT_NE(again.h, nullptr) << "the image was unloaded although its address was sent";
  EXPECT_EQ(f(1), 2007);
  const CodeRef ref2 = mproc::detail::code_ref_of(addr(f));
  EXPECT_EQ(ref2.image, ref.image);
  EXPECT_EQ(ref2.offset, ref.offset);
}

TEST(CodeRef, AnImageWithoutBuildIdIsIdentifiedByTheHashOfItsCode) {
  Lib plugin(MPROC_TEST_PLUGIN_N);
  ASSERT_NE(plugin.h, nullptr) << dlerror();
  const PluginFn f = plugin.fn();
  const CodeRef ref = mproc::detail::code_ref_of(addr(f));
  const ImageRecord rec = record_of(ref);
  EXPECT_EQ(rec.build_id.rfind("code-hash:", 0), 0u) << rec.build_id;
  EXPECT_EQ(rec.build_id.size(), 26u);
  const PluginFn back = round_trip(f);
  EXPECT_EQ(back, f);
  EXPECT_EQ(back(1), 3007);
}

// The receiver's errors. Records are learnt from this process's own table first (index 0: the
// main executable).
class CodeRefReceiver : public ::testing::Test {
 protected:
  void SetUp() override {
    ref_ = mproc::detail::code_ref_of(addr(&triple));
    own_ = mproc::detail::image_records(0);
    mproc::detail::learn_images(own_);
  }
  CodeRef ref_;
  std::vector<ImageRecord> own_;
};

template <class E>
std::string message_of(const std::vector<ImageRecord>& records) {
  try {
    mproc::detail::learn_images(records);
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception: ") + e.what();
  }
  return "no exception";
}

TEST_F(CodeRefReceiver, HostileRecordsAreRefusedAndNothingOfTheirBatchIsLearnt) {
  const std::string p = "/usr/lib/libx.so";
  const std::string id = "0123456789abcdef0123";
  EXPECT_NE(message_of<mproc::DecodeError>({{70000, p, id}}).find("beyond the 65536"),
            std::string::npos);
  EXPECT_NE(message_of<mproc::DecodeError>({{0xFFFFFFFFu, p, id}}).find("beyond"),
            std::string::npos);
  EXPECT_NE(message_of<mproc::DecodeError>({{5, "", id}}).find("no usable path"),
            std::string::npos);
  EXPECT_NE(message_of<mproc::DecodeError>({{5, "libx.so", id}}).find("no usable path"),
            std::string::npos);
  EXPECT_NE(message_of<mproc::DecodeError>({{5, "/" + std::string(1 << 20, 'x'), id}})
                .find("no usable path"),
            std::string::npos);
  EXPECT_NE(
      message_of<mproc::DecodeError>({{5, std::string("/a\0b", 4), id}}).find("no usable path"),
      std::string::npos);
  EXPECT_NE(message_of<mproc::DecodeError>({{5, p, ""}}).find("identity of 0 bytes"),
            std::string::npos);
  EXPECT_NE(message_of<mproc::DecodeError>({{5, p, std::string(100000, 'i')}}).find("identity"),
            std::string::npos);
  // A known index described differently, and two different descriptions in one batch.
  ImageRecord changed = own_[0];
  changed.build_id = id;
  const std::string m = message_of<mproc::ProcessError>({changed});
  EXPECT_NE(m.find("described twice, differently"), std::string::npos) << m;
  EXPECT_NE(m.find(own_[0].path), std::string::npos) << m;
  EXPECT_NE(message_of<mproc::ProcessError>({{7, p, id}, {8, p, id}, {7, p, "other"}})
                .find("described twice"),
            std::string::npos);
  // A refused batch is learnt not at all: index 7 and 8 stay unknown.
  EXPECT_THROW(mproc::detail::resolve_code(CodeRef{7, 0}), mproc::ProcessError);
  EXPECT_THROW(mproc::detail::resolve_code(CodeRef{8, 0}), mproc::ProcessError);
  // The same description again is accepted, and the image still resolves.
  EXPECT_NO_THROW(mproc::detail::learn_images(own_));
  EXPECT_EQ(mproc::detail::resolve_code(ref_), addr(&triple));
}

TEST_F(CodeRefReceiver, AnUnknownImageIsAProcessError) {
  for (std::size_t index :
       {own_.size() + 3, std::size_t{65535}, std::size_t{70000}, std::size_t{0xFFFFFFFFu}}) {
    try {
      mproc::detail::resolve_code(CodeRef{static_cast<std::uint32_t>(index), 16});
      ADD_FAILURE() << "image " << index << " resolved";
    } catch (const mproc::ProcessError& e) {
      EXPECT_NE(std::string(e.what()).find("which did not describe it"), std::string::npos)
          << e.what();
    }
  }
}

TEST_F(CodeRefReceiver, AnOffsetOutsideTheCodeIsADecodeError) {
  const std::uintptr_t data_offset = ref_.offset + (reinterpret_cast<std::uintptr_t>(&g_data) -
                                                    reinterpret_cast<std::uintptr_t>(&triple));
  for (std::uint64_t offset :
       {std::uint64_t{data_offset}, std::uint64_t{1} << 60, ~std::uint64_t{0}}) {
    try {
      mproc::detail::resolve_code(CodeRef{ref_.image, offset});
      ADD_FAILURE() << "offset " << offset << " resolved";
    } catch (const mproc::DecodeError& e) {
      EXPECT_NE(std::string(e.what()).find("is outside its code"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(own_[0].path), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(mproc::detail::resolve_code(ref_), addr(&triple));  // and after a located image
  EXPECT_THROW(mproc::detail::resolve_code(CodeRef{ref_.image, data_offset}), mproc::DecodeError);
}

TEST_F(CodeRefReceiver, AnImageThatIsNotLoadedAndWhoseFileIsMissingIsAProcessError) {
  const ImageRecord gone{50, "/nonexistent/dir/libgone.so", "\x01\x02\x03\x04"};
  mproc::detail::learn_images({gone});
  try {
    mproc::detail::resolve_code(CodeRef{50, 0x1000});
    ADD_FAILURE() << "resolved";
  } catch (const mproc::ProcessError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cannot load /nonexistent/dir/libgone.so"), std::string::npos) << m;
    EXPECT_NE(m.find("01020304"), std::string::npos) << m;
    EXPECT_NE(m.find("restart the program"), std::string::npos) << m;
  }
}

// A child forked while another thread holds the receiver's table lock (learn_images) can still
// learn and resolve: the tables' fork handlers hand the child unlocked tables. Without them a
// child forked at such an instant waits forever; each child here is given 10 s.
TEST(CodeRef, AChildForkedWhileAnotherThreadLearnsCanLearnAndResolve) {
  mproc_test::Watchdog dog;
  const CodeRef ref = mproc::detail::code_ref_of(addr(&triple));
  const std::vector<ImageRecord> records = mproc::detail::image_records(0);
  mproc::detail::learn_images(records);
  std::atomic<bool> stop{false};
  std::thread learner([&] {
    while (!stop.load(std::memory_order_relaxed)) mproc::detail::learn_images(records);
  });
  int hung = 0;
  int failed = 0;
  for (int i = 0; i < 100; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      mproc::detail::learn_images(records);
      const auto f =
          reinterpret_cast<PluginFn>(const_cast<void*>(mproc::detail::resolve_code(ref)));
      _exit(f == &triple && f(2) == 6 ? 0 : 1);
    }
    ASSERT_GT(pid, 0);
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    pid_t got = 0;
    while ((got = waitpid(pid, &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      usleep(1000);
    }
    if (got == 0) {
      ++hung;
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ++failed;
    }
    if (hung > 0) break;
  }
  stop.store(true);
  learner.join();
  EXPECT_EQ(hung, 0) << "a child waited for a lock its parent's other thread held at fork";
  EXPECT_EQ(failed, 0);
}

// Threads that race on first use of three images agree on every reference, add each image once,
// and resolve what they sent.
TEST(CodeRef, ThreadsRacingOnFirstUseAgree) {
  Lib plugin(MPROC_TEST_PLUGIN_A);
  ASSERT_NE(plugin.h, nullptr);
  Lib libc("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  ASSERT_NE(libc.h, nullptr);
  const std::vector<PluginFn> fns = {&triple, plugin.fn(),
                                     reinterpret_cast<PluginFn>(dlsym(libc.h, "abs")),  // NOLINT
                                     &add_five};
  const std::uint32_t before = mproc::detail::image_count();
  constexpr int kThreads = 6;
  constexpr int kRounds = 20000;
  std::atomic<bool> go{false};
  std::vector<std::vector<CodeRef>> seen(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load(std::memory_order_acquire)) {
      }
      std::vector<CodeRef>& mine = seen[t];
      mine.resize(fns.size());
      for (int r = 0; r < kRounds; ++r) {
        const std::size_t i = static_cast<std::size_t>(t + r) % fns.size();
        const CodeRef ref = mproc::detail::code_ref_of(addr(fns[i]));
        if (r < static_cast<int>(fns.size())) {
          mine[i] = ref;
        } else if (ref.image != mine[i].image || ref.offset != mine[i].offset) {
          mine[i] = CodeRef{0xFFFFFFFFu, 0};  // disagreement with itself
        }
      }
    });
  }
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
  for (int t = 1; t < kThreads; ++t) {
    for (std::size_t i = 0; i < fns.size(); ++i) {
      EXPECT_EQ(seen[t][i].image, seen[0][i].image) << "thread " << t << " function " << i;
      EXPECT_EQ(seen[t][i].offset, seen[0][i].offset) << "thread " << t << " function " << i;
    }
  }
  std::set<std::uint32_t> images;
  for (const CodeRef& ref : seen[0]) images.insert(ref.image);
  EXPECT_EQ(images.size(), 3u);
  EXPECT_LE(mproc::detail::image_count(), before + 3);
  const auto records = mproc::detail::image_records(0);
  std::set<std::string> paths;
  for (const auto& r : records) paths.insert(r.path);
  EXPECT_EQ(paths.size(), records.size()) << "an image was added twice";

  mproc::detail::learn_images(records);
  std::atomic<int> wrong{0};
  threads.clear();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds / 4; ++r) {
        const std::size_t i = static_cast<std::size_t>(t + r) % fns.size();
        if (mproc::detail::resolve_code(seen[0][i]) != addr(fns[i])) wrong.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
