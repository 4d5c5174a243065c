// soak/cast.cpp — see cast.hpp.
#include "soak/cast.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "soak/leaks.hpp"
#include "soak/roles.hpp"

namespace soak {

namespace {

using namespace std::chrono_literals;

int pidfd_send(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

int pidfd_open(int pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

int pool_client_slot() {
  for (int s = 0; s < kSlots; ++s)
    if (kCast[s].role == Role::kPoolClient) return s;
  return -1;
}

}  // namespace

Cast::Cast(World& world, std::uint64_t seed, std::chrono::milliseconds hang)
    : w_(world), seed_(seed), hang_(hang) {}

void Cast::start_all() {
  for (int s = 0; s < kSlots; ++s) {
    members_[s].progress_at = Clock::now();
    start(s);
  }
}

void Cast::start(int slot) {
  Member& m = members_[slot];
  Slot& st = w_.board->slots[slot];
  st.doing.store(static_cast<std::uint32_t>(Doing::kIdle));
  st.seed.store(mix(seed_ ^ (std::uint64_t(slot) << 40) ^ m.incarnation));
  // A producer goes on after every seq its predecessor handed to put().
  const std::uint64_t next = std::max(st.put_upto.load(), st.putting.load());
  st.put_upto.store(next);
  st.putting.store(next);
  st.in_window.store(0);
  st.holding.store(0);
  m.last_ops = st.ops.load();
  if (m.resume_at) m.stopped_for += Clock::now() - m.stopped_at;  // killed while stopped
  m.resume_at.reset();
  World* w = &w_;
  m.proc.emplace([w, slot] { return run_participant(*w, slot); });
  m.proc->start();
  ++m.incarnation;
}

void Cast::ended(int slot, bool killed) {
  Member& m = members_[slot];
  Slot& st = w_.board->slots[slot];
  const Part& part = kCast[slot];
  const std::optional<int> code = m.proc->exitcode();
  if (!code || (*code != 0 && !(killed && *code == -SIGKILL)))
    report_error(*w_.board, "%s %d exited with code %d while %s", role_name(part.role), part.index,
                 code ? *code : -1000, doing_name(static_cast<Doing>(st.doing.load())));
  switch (part.role) {
    case Role::kProducer:
    case Role::kJoinableProducer: {
      Ledger::Excuses& ex = excuses_[part.index];
      for (std::uint64_t s = st.put_upto.load(); s < st.putting.load(); ++s) ex.put.insert(s);
      ex.trim_below(w_.board->ledger.finalized(part.index));
      break;
    }
    case Role::kConsumer:
    case Role::kJoinableConsumer:
      if (st.in_window.load()) excuse_receipts(st);
      st.in_window.store(0);
      if (st.holding.exchange(0)) ++stats_.holding_deaths;
      break;
    default:
      break;
  }
  m.proc.reset();
}

void Cast::excuse_receipts(Slot& st) {
  ++stats_.window_deaths;
  const Receipts& r = st.receipts;
  if (r.overflow.load())
    report_error(*w_.board, "a consumer noted more than %u messages in one get", Receipts::kMax);
  const std::uint32_t n = std::min(r.count.load(), Receipts::kMax);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint32_t p = r.entries[i].producer.load();
    const std::uint64_t seq = r.entries[i].seq.load();
    // A torn header may name a producer that does not exist: nothing to excuse then.
    if (p < kLedgerProducers && seq >= w_.board->ledger.finalized(static_cast<int>(p)))
      excuses_[p].taken.insert(seq);
  }
}

void Cast::kill_member(int slot) {
  Member& m = members_[slot];
  if (m.killed_at) return;
  m.proc->kill();
  m.killed_at = Clock::now();
}

bool Cast::reap_member(int slot) {
  Member& m = members_[slot];
  if (m.proc->is_alive()) {
    if (m.killed_at && Clock::now() - *m.killed_at > 10s) {
      report_error(*w_.board, "%s %d still running 10 s after SIGKILL", role_name(kCast[slot].role),
                   kCast[slot].index);
      m.killed_at = Clock::now();  // reported every 10 s
    }
    return false;
  }
  ended(slot, m.killed_at.has_value());
  m.killed_at.reset();
  if (!w_.board->stop.load()) {
    start(slot);
    ++stats_.restarts;
  }
  return true;
}

void Cast::stop_member(int slot, std::chrono::milliseconds for_how_long) {
  Member& m = members_[slot];
  if (m.resume_at) return;  // already stopped
  if (pidfd_send(m.proc->sentinel(), SIGSTOP) != 0) return;
  m.stopped_at = Clock::now();
  m.resume_at = m.stopped_at + for_how_long;
  ++stats_.stops;
}

void Cast::resume_member(int slot) {
  Member& m = members_[slot];
  if (!m.resume_at) return;
  (void)pidfd_send(m.proc->sentinel(), SIGCONT);
  m.resume_at.reset();
  m.stopped_for += Clock::now() - m.stopped_at;
}

void Cast::tick() {
  const auto now = Clock::now();
  for (int s = 0; s < kSlots; ++s) {
    Member& m = members_[s];
    if (!m.proc) continue;
    if (m.resume_at && now >= *m.resume_at) resume_member(s);
    (void)reap_member(s);
  }
  for (auto it = stopped_pids_.begin(); it != stopped_pids_.end();) {
    if (now < it->resume_at) {
      ++it;
      continue;
    }
    (void)pidfd_send(it->pidfd, SIGCONT);
    close(it->pidfd);
    it = stopped_pids_.erase(it);
  }
  watchdog();
  reap_orphans(known_pids());
}

void Cast::watchdog() {
  const auto now = Clock::now();
  for (int s = 0; s < kSlots; ++s) {
    Member& m = members_[s];
    if (!m.proc || m.resume_at || m.killed_at) continue;
    const std::uint64_t ops = w_.board->slots[s].ops.load();
    if (ops != m.last_ops) {
      m.last_ops = ops;
      m.progress_at = now;
      m.stopped_for = {};
      continue;
    }
    const Clock::duration quiet = now - m.progress_at - m.stopped_for;
    if (quiet < hang_) continue;
    ++stats_.hangs;
    const Part& part = kCast[s];
    report_error(*w_.board, "hang: %s %d made no progress for %.1f s (not stopped), in %s",
                 role_name(part.role), part.index, std::chrono::duration<double>(quiet).count(),
                 doing_name(static_cast<Doing>(w_.board->slots[s].doing.load())));
    m.progress_at = now;
    m.stopped_for = {};
    kill_member(s);
  }
}

void Cast::chaos(Rng& rng) {
  const auto stop_for = std::chrono::milliseconds(1 + rng() % 200);
  const bool kill = rng() % 100 < 60;
  const std::vector<int> pool = pool_processes();
  const std::size_t target = rng() % (kSlots + pool.size());
  if (target >= static_cast<std::size_t>(kSlots)) {
    const std::size_t i = target - kSlots;
    const bool zygote = i == 0;
    const int parent = zygote ? *members_[pool_client_slot()].proc->pid() : pool[0];
    // The zygote is killed rarely: each kill costs the whole pool.
    signal_pool_process(pool[i], parent, zygote, kill && (!zygote || rng() % 5 == 0), stop_for);
    return;
  }
  const int slot = static_cast<int>(target);
  if (!members_[slot].proc || members_[slot].killed_at) return;
  if (kill && kCast[slot].role != Role::kJoinableConsumer) {
    kill_member(slot);
    ++stats_.kills;
  } else {
    stop_member(slot, stop_for);
  }
}

std::vector<int> Cast::pool_processes() const {
  const Member& client = members_[pool_client_slot()];
  if (!client.proc || client.resume_at) return {};
  const std::optional<int> pid = client.proc->pid();
  if (!pid) return {};
  const std::vector<int> zygotes = children_of(*pid);
  if (zygotes.size() != 1) return {};  // between pools
  std::vector<int> out{zygotes[0]};
  for (int worker : children_of(zygotes[0])) out.push_back(worker);
  return out;
}

void Cast::signal_pool_process(int pid, int expected_parent, bool zygote, bool kill,
                               std::chrono::milliseconds stop) {
  const int fd = pidfd_open(pid);
  if (fd < 0) return;
  // The pid may have been reused since the listing: act only on a child of the expected parent.
  if (proc_stat(pid).ppid != expected_parent) {
    close(fd);
    return;
  }
  if (kill) {
    if (pidfd_send(fd, SIGKILL) == 0) {
      ++stats_.kills;
      ++(zygote ? stats_.zygote_kills : stats_.worker_kills);
    }
    close(fd);
    return;
  }
  if (pidfd_send(fd, SIGSTOP) != 0) {
    close(fd);
    return;
  }
  ++stats_.stops;
  stopped_pids_.push_back({fd, Clock::now() + stop});
}

void Cast::resume_all() {
  for (int s = 0; s < kSlots; ++s)
    if (members_[s].proc) resume_member(s);
  for (const StoppedPid& p : stopped_pids_) {
    (void)pidfd_send(p.pidfd, SIGCONT);
    close(p.pidfd);
  }
  stopped_pids_.clear();
}

void Cast::join_all(Clock::time_point deadline) {
  for (int s = 0; s < kSlots; ++s) {
    Member& m = members_[s];
    if (!m.proc) continue;
    if (!m.proc->join_until(deadline)) {
      ++stats_.hangs;
      const Part& part = kCast[s];
      report_error(*w_.board, "hang: %s %d did not stop when asked, in %s", role_name(part.role),
                   part.index, doing_name(static_cast<Doing>(w_.board->slots[s].doing.load())));
      kill_member(s);
      if (!m.proc->join(10s)) continue;  // reported by the leak check
    }
    ended(s, m.killed_at.has_value());
    m.killed_at.reset();
  }
  for (Member& m : members_) m.proc.reset();
}

std::set<int> Cast::known_pids() const {
  std::set<int> out;
  for (const Member& m : members_)
    if (m.proc)
      if (auto pid = m.proc->pid()) out.insert(*pid);
  return out;
}

}  // namespace soak
