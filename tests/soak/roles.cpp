// soak/roles.cpp — runs the participant of a cast slot.
#include "soak/roles.hpp"

#include <cxxabi.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <typeinfo>

namespace soak {

namespace {

int dispatch(World& w, Slot& me, const Part& part) {
  switch (part.role) {
    case Role::kProducer:
    case Role::kJoinableProducer:
      return producer_main(w, me, part.index);
    case Role::kConsumer:
      return consumer_main(w, me);
    case Role::kJoinableConsumer:
      return joinable_consumer_main(w, me);
    case Role::kLocker:
      return locker_main(w, me);
    case Role::kSyncParty:
      return sync_party_main(w, me, part.index);
    case Role::kPoolClient:
      return pool_client_main(w, me);
  }
  return 2;
}

std::string type_name(const std::type_info& t) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(t.name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(t.name());
}

}  // namespace

int run_participant(World& w, int slot) {
  const Part& part = kCast[slot];
  Slot& me = w.board->slots[slot];
  // Below the driver's priority (inherited by the Pool's processes): the driver's chaos and
  // watchdog keep their pace however busy the participants keep the machine.
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, 0);
  if (errno == 0) (void)setpriority(PRIO_PROCESS, 0, std::min(nice + kParticipantNice, 19));
  try {
    return dispatch(w, me, part);
  } catch (const std::exception& e) {
    report_error(*w.board, "%s %d (%s): %s: %s", role_name(part.role), part.index,
                 doing_name(static_cast<Doing>(me.doing.load())), type_name(typeid(e)).c_str(),
                 e.what());
  } catch (...) {
    report_error(*w.board, "%s %d: an exception not derived from std::exception",
                 role_name(part.role), part.index);
  }
  return 2;
}

}  // namespace soak
