// bench/main.cpp — the command line of `bench`: it lists its rows and runs them on request.
//
//   bench --list                one JSON line per group (definition, target), then per workload
//   bench --info                one JSON line: the compiler and build of this binary
//   bench --serve [--pin P]     reads commands on stdin and answers each with one JSON line:
//     make NAME                 makes the row's runner (a two-process row forks its partners now)
//                               -> {"kind": "made", "name": NAME}
//     run NAME N                runs N iterations of the row
//                               -> {"kind": "time", "name": NAME, "iters": N, "seconds": S}
//     any failure               -> {"kind": "error", "name": NAME, "error": WHAT} (the row's
//                               runner is gone; the program goes on serving the others)
//   At the end of input the runners are destroyed, last made first, and the program exits 0.
//   --pin default|split|same|none overrides where every two-process row puts its processes.
//
// This program decides nothing about how long, how often or in which order a row runs:
// bench/compare.py owns that policy (calibration, repetitions, interleaving, rounds; see
// docs/benchmarks.md) for these rows and the Python anchors alike.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <mproc/start_method.hpp>
#include <sstream>
#include <string>
#include <string_view>
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

[[noreturn]] void usage(int rc) {
  std::fprintf(rc == 0 ? stdout : stderr,
               "usage: bench --list | --info | --serve [--pin default|split|same|none]\n"
               "  (bench/compare.py drives --serve; see bench/main.cpp and docs/benchmarks.md)\n");
  std::exit(rc);
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

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

void print_info() {
#if defined(__clang__)
  const std::string compiler = std::string("clang++ ") + __clang_version__;
#elif defined(__GNUC__)
  const std::string compiler = std::string("g++ ") + __VERSION__;
#else
  const std::string compiler = "unknown";
#endif
  std::printf(
      "{\"kind\": \"info\", \"protocol\": \"serve\", \"compiler\": %s, \"build_type\": %s, "
      "\"cxx_flags\": %s}\n",
      json_string(compiler).c_str(), json_string(MPROC_BENCH_BUILD_TYPE).c_str(),
      json_string(MPROC_BENCH_CXX_FLAGS).c_str());
}

void print_list() {
  for (const auto& g : groups()) {
    std::printf(
        "{\"kind\": \"group\", \"group\": %s, \"op\": %s, \"target\": %s, \"isolate\": %s, "
        "\"rate\": %s, \"bytes_per_op\": %llu}\n",
        json_string(g.name).c_str(), json_string(g.op).c_str(), json_string(g.target).c_str(),
        g.isolate ? "true" : "false", json_string(rate_name(g.rate)).c_str(),
        static_cast<unsigned long long>(g.bytes_per_op));
  }
  for (const Workload& w : workloads()) {
    std::printf(
        "{\"kind\": \"workload\", \"name\": %s, \"group\": %s, \"impl\": %s, \"label\": %s, "
        "\"primary\": %s}\n",
        json_string(w.name).c_str(), json_string(w.group).c_str(), json_string(w.impl).c_str(),
        json_string(w.label).c_str(), w.primary ? "true" : "false");
  }
}

void reply_error(const std::string& name, const std::string& what) {
  std::printf("{\"kind\": \"error\", \"name\": %s, \"error\": %s}\n", json_string(name).c_str(),
              json_string(what).c_str());
}

// The rows made so far, in the order they were made.
struct Made {
  const Workload* w;
  std::unique_ptr<Runner> runner;
};

void handle(const std::string& line, std::vector<Made>& made) {
  std::istringstream in(line);
  std::string cmd;
  std::string name;
  in >> cmd >> name;
  if (cmd == "make") {
    const Workload* w = nullptr;
    for (const Workload& x : workloads()) {
      if (x.name == name) w = &x;
    }
    if (w == nullptr) return reply_error(name, "no such workload");
    try {
      made.push_back({w, w->make()});
    } catch (const std::exception& e) {
      return reply_error(name, e.what());
    }
    std::printf("{\"kind\": \"made\", \"name\": %s}\n", json_string(name).c_str());
  } else if (cmd == "run") {
    std::uint64_t iters = 0;
    if (!(in >> iters) || iters == 0) return reply_error(name, "run: bad iteration count");
    Made* m = nullptr;
    for (Made& x : made) {
      if (x.w->name == name && x.runner) m = &x;
    }
    if (m == nullptr) return reply_error(name, "run: not made here, or failed before");
    try {
      const double seconds = m->runner->run(iters);
      std::printf("{\"kind\": \"time\", \"name\": %s, \"iters\": %llu, \"seconds\": %.17g}\n",
                  json_string(name).c_str(), static_cast<unsigned long long>(iters), seconds);
    } catch (const std::exception& e) {
      m->runner.reset();
      return reply_error(name, e.what());
    }
  } else {
    reply_error(name, "unknown command '" + cmd + "' (make NAME, run NAME N)");
  }
}

int serve() {
  std::vector<Made> made;
  for (std::string line; std::getline(std::cin, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    handle(line, made);
    std::fflush(stdout);
  }
  // Partners go in the reverse order of their making.
  while (!made.empty()) made.pop_back();
  return 0;
}

}  // namespace
}  // namespace mproc_bench

int main(int argc, char** argv) {
  // First: in a child started with spawn or forkserver (this program run again, the start-method
  // rows of workloads_start.cpp), init() becomes that child and never returns.
  mproc::init(argc, argv);
  // Every row that does not choose a start method forks, as the rows did before init() was called
  // here: without this, a Pool made while another row's Pool has its threads would get the default
  // rule's forkserver. The start-method rows choose theirs per object.
  mproc::set_start_method(mproc::StartMethod::fork);
  using namespace mproc_bench;
  std::string_view mode;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--list" || a == "--info" || a == "--serve") {
      mode = a;
    } else if (a == "--pin" && i + 1 < argc) {
      const std::string_view v = argv[++i];
      if (v == "split") {
        set_pin_override(Pin::kSplit);
      } else if (v == "same") {
        set_pin_override(Pin::kSame);
      } else if (v == "none") {
        set_pin_override(Pin::kNone);
      } else if (v != "default") {
        usage(2);
      }
    } else if (a == "--help" || a == "-h") {
      usage(0);
    } else {
      std::fprintf(stderr, "bench: unknown argument '%s'\n", argv[i]);
      usage(2);
    }
  }
  if (mode == "--info") {
    print_info();
  } else if (mode == "--list") {
    print_list();
  } else if (mode == "--serve") {
    return serve();
  } else {
    usage(2);
  }
  return 0;
}
