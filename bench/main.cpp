// bench/main.cpp — the command line of `bench` and `bench_floors`: list, select, measure, report.
//
//   bench [--list] [--only REGEX] [--json] [--quick] [--reps N] [--min-time SECONDS]
//         [--pin default|split|same|none] [--info]
//
// Policy (docs/benchmarks.md): per workload, one Runner; an iteration count calibrated so that one
// repetition lasts at least --min-time (0.2 s); --reps repetitions (5), taken in turn with the
// other workloads of its group; the reported value is the median time per op over the
// repetitions, with min and max beside it.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "harness.hpp"

#ifndef MPROC_BENCH_BUILD_TYPE
#define MPROC_BENCH_BUILD_TYPE ""
#endif
#ifndef MPROC_BENCH_CXX_FLAGS
#define MPROC_BENCH_CXX_FLAGS ""
#endif

namespace mproc_bench {
namespace {

struct Options {
  bool list = false;
  bool json = false;
  bool quick = false;
  bool info = false;
  std::string only;
  std::optional<Pin> pin;  // nullopt: each workload's own
  int reps = -1;
  double min_time = -1;
};

[[noreturn]] void usage(int rc) {
  std::fprintf(rc == 0 ? stdout : stderr,
               "usage: bench [--list] [--only REGEX] [--json] [--quick] [--reps N] "
               "[--min-time SECONDS] [--pin default|split|same|none] [--info]\n"
               "  --list       print the workloads (with --json: groups and workloads as JSON)\n"
               "  --only RE    run the workloads whose name matches RE (ECMAScript, search)\n"
               "  --json       one JSON object per line on stdout; progress goes to stderr\n"
               "  --quick      1 repetition of at least 0.05 s (a smoke run, not a measurement)\n"
               "  --reps N     repetitions per workload (default 5)\n"
               "  --min-time S seconds one repetition lasts at least (default 0.2)\n"
               "  --pin P      where two-process rows run: default (each workload's own), split\n"
               "               (two CPUs), same (one CPU), none (the scheduler decides)\n"
               "  --info       print the compiler and build of this binary\n");
  std::exit(rc);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage(2);
      return argv[++i];
    };
    if (a == "--list") {
      o.list = true;
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--info") {
      o.info = true;
    } else if (a == "--only") {
      o.only = value();
    } else if (a == "--pin") {
      const std::string_view v = value();
      if (v == "default") {
        o.pin.reset();
      } else if (v == "split") {
        o.pin = Pin::kSplit;
      } else if (v == "same") {
        o.pin = Pin::kSame;
      } else if (v == "none") {
        o.pin = Pin::kNone;
      } else {
        usage(2);
      }
    } else if (a == "--reps") {
      o.reps = std::atoi(value());
      if (o.reps < 1) usage(2);
    } else if (a == "--min-time") {
      o.min_time = std::atof(value());
      if (!(o.min_time > 0)) usage(2);
    } else if (a == "--help" || a == "-h") {
      usage(0);
    } else {
      std::fprintf(stderr, "bench: unknown argument '%s'\n", argv[i]);
      usage(2);
    }
  }
  if (o.reps < 0) o.reps = o.quick ? 1 : 5;
  if (o.min_time < 0) o.min_time = o.quick ? 0.05 : 0.2;
  return o;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string compiler() {
#if defined(__clang__)
  return std::string("clang++ ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("g++ ") + __VERSION__;
#else
  return "unknown";
#endif
}

std::size_t group_rank(const std::string& name) {
  const auto& g = groups();
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (g[i].name == name) return i;
  }
  return g.size();
}

int impl_rank(const std::string& impl) { return impl == "mproc" ? 0 : impl == "floor" ? 1 : 2; }

const char* rate_name(Rate r) {
  switch (r) {
    case Rate::kMessages:
      return "messages";
    case Rate::kBytes:
      return "bytes";
    case Rate::kNone:
      break;
  }
  return "";
}

// The workloads in table order: by group, main rows first, mproc before the floor.
std::vector<const Workload*> ordered(const std::string& only) {
  std::vector<const Workload*> out;
  const std::regex re(only.empty() ? std::string(".*") : only);
  for (const auto& w : workloads()) {
    if (std::regex_search(w.name, re)) out.push_back(&w);
  }
  std::stable_sort(out.begin(), out.end(), [](const Workload* a, const Workload* b) {
    const auto ka = std::tuple(group_rank(a->group), a->group, !a->primary, impl_rank(a->impl));
    const auto kb = std::tuple(group_rank(b->group), b->group, !b->primary, impl_rank(b->impl));
    return ka < kb;
  });
  return out;
}

// The watchdog: a group that has not finished in time means a stuck primitive, not a slow one.
char g_current[256];

extern "C" void on_alarm(int) {
  const char head[] = "bench: watchdog expired in group ";
  (void)!::write(STDERR_FILENO, head, sizeof head - 1);
  (void)!::write(STDERR_FILENO, g_current, std::strlen(g_current));
  (void)!::write(STDERR_FILENO, "\n", 1);
  ::_exit(124);
}

// Iterations for one repetition of at least `min_time`, from a trial of `n` that took `t` seconds.
std::uint64_t scale(std::uint64_t n, double t, double min_time) {
  return std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(static_cast<double>(n) * min_time / t * 1.05)));
}

// One workload being measured.
struct Slot {
  const Workload* w = nullptr;
  std::unique_ptr<Runner> runner;
  std::uint64_t n = 1;
  std::vector<double> samples;  // ns per op, one per repetition
  int dropped = 0;
  std::string error;  // non-empty: failed
  double median = 0, min = 0, max = 0;

  bool done(int reps) const { return !error.empty() || static_cast<int>(samples.size()) >= reps; }

  // Grows n until a trial lasts a fifth of min_time, then scales it to min_time (+5%).
  void calibrate(double min_time) {
    n = 1;
    for (;;) {
      const double t = runner->run(n);
      if (t >= min_time / 5) {
        n = scale(n, t, min_time);
        return;
      }
      const double grow = t > 0 ? (min_time / 5) / t * 1.5 : 100.0;
      n = static_cast<std::uint64_t>(static_cast<double>(n) * std::clamp(grow, 2.0, 100.0));
    }
  }

  // One repetition. One that lasted under half of min_time (calibrated in a slow moment) is dropped
  // with those before it and n scaled up, at most 5 times; one over 4x min_time (calibrated in a
  // fast moment) counts, and later ones get a smaller n.
  void repeat(double min_time) {
    const double t = runner->run(n);
    if (t < min_time / 2 && dropped < 5) {
      ++dropped;
      n = scale(n, t, min_time);
      samples.clear();
      return;
    }
    samples.push_back(t * 1e9 / static_cast<double>(n));
    if (t > 4 * min_time) n = scale(n, t, min_time);
  }

  void summarise() {
    std::vector<double> s = samples;
    std::sort(s.begin(), s.end());
    const std::size_t m = s.size();
    median = m % 2 == 1 ? s[m / 2] : (s[m / 2 - 1] + s[m / 2]) / 2;
    min = s.front();
    max = s.back();
  }
};

// Measures the workloads of one group together: every runner is made and calibrated first, then the
// repetitions go round the workloads in turn (mproc, floor, mproc, floor, ...), so that a slow
// spell of the machine falls on all of them alike and their ratio holds.
std::vector<Slot> measure_group(const std::vector<const Workload*>& members, const Options& o) {
  std::vector<Slot> slots(members.size());
  for (std::size_t i = 0; i < members.size(); ++i) {
    Slot& s = slots[i];
    s.w = members[i];
    try {
      s.runner = s.w->make();
      s.calibrate(o.min_time);
    } catch (const std::exception& e) {
      s.error = e.what();
      s.runner.reset();
    }
  }
  for (bool more = true; more;) {
    more = false;
    for (Slot& s : slots) {
      if (s.done(o.reps)) continue;
      try {
        s.repeat(o.min_time);
      } catch (const std::exception& e) {
        s.error = e.what();
        s.runner.reset();
      }
      more = more || !s.done(o.reps);
    }
  }
  // Partners go in the reverse order of their making; the CPU placement goes back to the start's.
  for (auto it = slots.rbegin(); it != slots.rend(); ++it) it->runner.reset();
  restore_affinity();
  for (Slot& s : slots) {
    if (s.error.empty()) s.summarise();
  }
  return slots;
}

void print_slot(const Slot& s, const Options& o) {
  const Workload& w = *s.w;
  if (!s.error.empty()) {
    if (o.json) {
      std::printf(
          "{\"kind\": \"error\", \"name\": %s, \"group\": %s, \"impl\": %s, \"error\": %s}\n",
          json_string(w.name).c_str(), json_string(w.group).c_str(), json_string(w.impl).c_str(),
          json_string(s.error).c_str());
    }
    std::fprintf(stderr, "bench: %s failed: %s\n", w.name.c_str(), s.error.c_str());
    return;
  }
  if (!o.json) {
    std::printf("%-42s %9.1f ns %9.1f ns %9.1f ns %12llu\n", w.name.c_str(), s.median, s.min, s.max,
                static_cast<unsigned long long>(s.n));
    return;
  }
  std::string samples;
  for (const double v : s.samples) samples += (samples.empty() ? "" : ", ") + json_number(v);
  std::printf(
      "{\"kind\": \"result\", \"name\": %s, \"group\": %s, \"impl\": %s, \"label\": %s, "
      "\"primary\": %s, \"value\": %s, \"unit\": %s, \"stat\": \"median\", \"min\": %s, "
      "\"max\": %s, \"samples\": [%s], \"iters\": %llu, \"reps\": %d, \"min_time\": %s}\n",
      json_string(w.name).c_str(), json_string(w.group).c_str(), json_string(w.impl).c_str(),
      json_string(w.label).c_str(), w.primary ? "true" : "false", json_number(s.median).c_str(),
      json_string(w.unit).c_str(), json_number(s.min).c_str(), json_number(s.max).c_str(),
      samples.c_str(), static_cast<unsigned long long>(s.n), o.reps,
      json_number(o.min_time).c_str());
}

void print_info() {
  std::printf("{\"kind\": \"info\", \"compiler\": %s, \"build_type\": %s, \"cxx_flags\": %s}\n",
              json_string(compiler()).c_str(), json_string(MPROC_BENCH_BUILD_TYPE).c_str(),
              json_string(MPROC_BENCH_CXX_FLAGS).c_str());
}

void print_list(const Options& o) {
  const auto sel = ordered(o.only);
  if (!o.json) {
    for (const Workload* w : sel) {
      std::printf("%-42s %-8s %s\n", w->name.c_str(), w->impl.c_str(), w->label.c_str());
    }
    return;
  }
  for (const auto& g : groups()) {
    std::printf(
        "{\"kind\": \"group\", \"group\": %s, \"op\": %s, \"target\": %s, \"isolate\": %s, "
        "\"rate\": %s, \"bytes_per_op\": %llu}\n",
        json_string(g.name).c_str(), json_string(g.op).c_str(), json_string(g.target).c_str(),
        g.isolate ? "true" : "false", json_string(rate_name(g.rate)).c_str(),
        static_cast<unsigned long long>(g.bytes_per_op));
  }
  for (const Workload* w : sel) {
    std::printf(
        "{\"kind\": \"workload\", \"name\": %s, \"group\": %s, \"impl\": %s, \"label\": %s, "
        "\"primary\": %s, \"unit\": %s}\n",
        json_string(w->name).c_str(), json_string(w->group).c_str(), json_string(w->impl).c_str(),
        json_string(w->label).c_str(), w->primary ? "true" : "false", json_string(w->unit).c_str());
  }
}

int run_all(const Options& o) {
  const auto sel = ordered(o.only);
  if (sel.empty()) {
    std::fprintf(stderr, "bench: no workload matches '%s'\n", o.only.c_str());
    return 1;
  }
  ::signal(SIGALRM, on_alarm);
  int failures = 0;
  if (!o.json) {
    std::printf("%-42s %12s %12s %12s %12s\n", "workload", "median", "min", "max", "iters");
  }
  for (std::size_t i = 0; i < sel.size();) {
    std::vector<const Workload*> members;
    for (; i < sel.size() && (members.empty() || sel[i]->group == members[0]->group); ++i) {
      members.push_back(sel[i]);
    }
    std::snprintf(g_current, sizeof g_current, "%s", members[0]->group.c_str());
    const double budget = 60 + 10.0 * o.reps * o.min_time * static_cast<double>(members.size());
    ::alarm(static_cast<unsigned>(budget));
    if (o.json) {
      std::fprintf(stderr, " ");
      for (const Workload* w : members) std::fprintf(stderr, " %s", w->name.c_str());
      std::fprintf(stderr, "\n");
    }
    for (const Slot& s : measure_group(members, o)) {
      if (!s.error.empty()) ++failures;
      print_slot(s, o);
    }
    ::alarm(0);
    std::fflush(stdout);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace mproc_bench

int main(int argc, char** argv) {
  using namespace mproc_bench;
  const Options o = parse(argc, argv);
  set_pin_override(o.pin);
  try {
    if (o.info) {
      print_info();
      return 0;
    }
    if (o.list) {
      print_list(o);
      return 0;
    }
    return run_all(o);
  } catch (const std::regex_error& e) {
    std::fprintf(stderr, "bench: bad --only pattern '%s': %s\n", o.only.c_str(), e.what());
    return 2;
  }
}
