// bench/command_line.cpp — the command line every benchmark program speaks (command_line.hpp).
#include "command_line.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
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

[[noreturn]] void usage(const CommandLine& cl, int rc) {
  std::fprintf(rc == 0 ? stdout : stderr,
               "usage: %s --list | --info | --serve [--pin default|split|same|none]\n  %s\n",
               cl.program, cl.note);
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

int serve(int (*before)()) {
  if (before != nullptr)
    if (const int rc = before(); rc != 0) return rc;
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

int run_command_line(int argc, char** argv, const CommandLine& cl) {
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
        usage(cl, 2);
      }
    } else if (a == "--help" || a == "-h") {
      usage(cl, 0);
    } else {
      std::fprintf(stderr, "%s: unknown argument '%s'\n", cl.program, argv[i]);
      usage(cl, 2);
    }
  }
  if (mode == "--info") {
    print_info();
  } else if (mode == "--list") {
    print_list();
  } else if (mode == "--serve") {
    return serve(cl.before_serve);
  } else {
    usage(cl, 2);
  }
  return 0;
}

}  // namespace mproc_bench
