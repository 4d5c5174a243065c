// soak/pool_role.cpp — the pool client: owns a Pool of kPoolWorkers and keeps it busy with uneven
// tasks (random durations, some large arguments that travel in memfds, some large results), through
// apply_async, imap_unordered and map, checking every result against its task.
//
// Expected outcomes of chaos: WorkerLost for the task a killed worker was running (counted), and
// BrokenPool once the zygote was killed (the pool is then replaced), or a ProcessError from the
// Pool's constructor when its zygote was killed before it was ready. Anything else is an error.
// The driver compares those counts with the kills it made.
#include <chrono>
#include <cstdint>
#include <exception>
#include <mproc/errors.hpp>
#include <mproc/pool.hpp>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "soak/roles.hpp"

namespace soak {

namespace {

using namespace std::chrono_literals;

// Generous: the watchdog (seconds without progress) decides what a hang is, not this.
constexpr auto kResultTimeout = 60s;

struct PoolTask {
  std::uint64_t id = 0;
  std::uint32_t sleep_us = 0;
  std::uint32_t result_len = 0;
  std::vector<std::uint8_t> arg;  // make_bytes(id, arg.size())
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, sleep_us, result_len, arg);
  }
};

struct PoolResult {
  std::uint64_t id = 0;
  std::uint64_t arg_sum = 0;       // checksum(id, arg) as the worker saw it
  std::vector<std::uint8_t> data;  // make_bytes(~id, result_len)
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, arg_sum, data);
  }
};

PoolResult run_task(const PoolTask& t) {
  if (t.sleep_us) std::this_thread::sleep_for(std::chrono::microseconds(t.sleep_us));
  return PoolResult{t.id, checksum(t.id, t.arg), make_bytes(~t.id, t.result_len)};
}

// Uneven: mostly quick and small; some take milliseconds, some tens; some arguments are large
// enough to travel in a memfd (above a quarter of the 1 MiB mailbox), some results stream.
PoolTask make_task(std::uint64_t id, Rng& rng) {
  PoolTask t{id, 0, 0, {}};
  const auto r = rng() % 100;
  t.sleep_us = static_cast<std::uint32_t>(r < 70   ? rng() % 200
                                          : r < 95 ? 1000 + rng() % 4000
                                                   : 20000 + rng() % 30000);
  const auto a = rng() % 100;
  const std::size_t arg_len = a < 85   ? rng() % 64
                              : a < 95 ? 1024 + rng() % (64 * 1024)
                                       : 256 * 1024 + rng() % (2 * 1024 * 1024);
  t.arg = make_bytes(id, arg_len);
  t.result_len =
      static_cast<std::uint32_t>(rng() % 10 == 0 ? 64 * 1024 + rng() % (1024 * 1024) : rng() % 128);
  return t;
}

// Small tasks for imap/map (a chunk's arguments stay in the mailbox).
PoolTask make_small_task(std::uint64_t id, Rng& rng) {
  PoolTask t{
      id, static_cast<std::uint32_t>(rng() % 500), static_cast<std::uint32_t>(rng() % 64), {}};
  t.arg = make_bytes(id, rng() % 256);
  return t;
}

bool right(const PoolResult& r, const PoolTask& t) {
  return r.id == t.id && r.arg_sum == checksum(t.id, t.arg) && r.data.size() == t.result_len &&
         r.data == make_bytes(~t.id, t.result_len);
}

class Client {
 public:
  Client(World& w, Slot& me) : w_(w), me_(me), rng_(me.seed.load()), next_id_(me.seed.load()) {}

  int run() {
    while (!stopping(w_)) {
      set_doing(me_, Doing::kPoolStart);
      std::optional<mproc::Pool> made = make_pool();
      if (!made) continue;
      mproc::Pool& pool = *made;
      broken_ = false;
      for (int batch = 0; !stopping(w_) && !broken_; ++batch) {
        apply_batch(pool);
        if (batch % 4 == 1) imap_batch(pool);
        if (batch % 8 == 3) map_batch(pool);
      }
      set_doing(me_, Doing::kPoolJoin);
      if (broken_) {
        w_.board->counters.pools_broken++;
        pool.terminate();
        continue;
      }
      pool.close();
      pool.join();
      if (pool.unfinished() != 0) {
        w_.board->counters.pool_drift++;
        w_.board->log.add("Pool::unfinished() is %zu after join()", pool.unfinished());
      }
    }
    return 0;
  }

 private:
  // A new pool; empty if its zygote died before it was ready (killed by the chaos: counted as a
  // broken pool, which the driver compares with its zygote kills).
  std::optional<mproc::Pool> make_pool() {
    try {
      return std::optional<mproc::Pool>(std::in_place, kPoolWorkers);
    } catch (const mproc::ProcessError&) {
      w_.board->counters.pools_broken++;
      return std::nullopt;
    }
  }

  // Counts one outcome: `check` returns whether the result was right (empty: there was none,
  // nothing to count), or throws the task's error.
  template <class Check>
  void tally(Check&& check) {
    Counters& c = w_.board->counters;
    try {
      const std::optional<bool> ok = check();
      if (!ok) return;
      if (*ok) {
        c.pool_ok++;
      } else if (c.pool_wrong++ < 8) {
        w_.board->log.add("a pool task returned a result that is not its own");
      }
    } catch (const mproc::WorkerLost&) {
      c.pool_lost++;
    } catch (const mproc::BrokenPool&) {
      broken_ = true;
    } catch (const std::exception& e) {
      report_error(*w_.board, "pool task failed: %s", e.what());
    }
    beat(me_);
  }

  void apply_batch(mproc::Pool& pool) {
    std::vector<std::pair<PoolTask, mproc::AsyncResult<PoolResult>>> rs;
    set_doing(me_, Doing::kPoolSubmit);
    try {
      for (int i = 0; i < 8; ++i) {
        PoolTask t = make_task(next_id_++, rng_);
        auto r = pool.apply_async(run_task, t);
        rs.emplace_back(std::move(t), std::move(r));
      }
    } catch (const mproc::BrokenPool&) {
      broken_ = true;
    }
    set_doing(me_, Doing::kPoolWait);
    for (auto& entry : rs) {  // clang 14 cannot capture structured bindings
      auto& t = entry.first;
      auto& r = entry.second;
      tally([&] { return std::optional<bool>(right(r.get(kResultTimeout), t)); });
    }
  }

  void imap_batch(mproc::Pool& pool) {
    std::vector<PoolTask> ts;
    for (int i = 0; i < 24; ++i) ts.push_back(make_small_task(next_id_++, rng_));
    set_doing(me_, Doing::kPoolWait);
    try {
      auto it = pool.imap_unordered(run_task, ts);
      bool more = true;
      for (std::size_t n = 0; more && !broken_ && n <= ts.size(); ++n) {
        tally([&]() -> std::optional<bool> {
          const std::optional<PoolResult> r = it.next(kResultTimeout);
          if (!r) {
            more = false;
            return std::nullopt;
          }
          const std::uint64_t i = r->id - ts.front().id;  // wraps to huge for a foreign id
          return i < ts.size() && right(*r, ts[static_cast<std::size_t>(i)]);
        });
      }
    } catch (const mproc::BrokenPool&) {
      broken_ = true;
    }
  }

  void map_batch(mproc::Pool& pool) {
    std::vector<PoolTask> ts;
    for (int i = 0; i < 16; ++i) ts.push_back(make_small_task(next_id_++, rng_));
    set_doing(me_, Doing::kPoolWait);
    tally([&]() -> std::optional<bool> {
      const std::vector<PoolResult> rs = pool.map(run_task, ts);
      if (rs.size() != ts.size()) return false;
      for (std::size_t i = 0; i < ts.size(); ++i)
        if (!right(rs[i], ts[i])) return false;
      return true;
    });
  }

  World& w_;
  Slot& me_;
  Rng rng_;
  std::uint64_t next_id_;
  bool broken_ = false;
};

}  // namespace

int pool_client_main(World& w, Slot& me) { return Client(w, me).run(); }

}  // namespace soak
