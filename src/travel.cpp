// Descriptors that travel beside a value's bytes, and the calling thread's travel scopes (see
// <mproc/detail/travel.hpp>). The code references are in src/image.cpp.
#include <mproc/detail/travel.hpp>
#include <mproc/errors.hpp>
#include <string>
#include <utility>

#include "posix/error.hpp"
#include "posix/fd_io.hpp"
#include "posix/pidfd.hpp"

namespace mproc::detail {
namespace {
thread_local Descriptors* t_out = nullptr;
thread_local const Descriptors* t_in = nullptr;
}  // namespace

Descriptors::Descriptors(Descriptors&& other) noexcept : fds_(std::move(other.fds_)) {
  other.fds_.clear();
}

Descriptors& Descriptors::operator=(Descriptors&& other) noexcept {
  if (this != &other) {
    clear();
    fds_ = std::move(other.fds_);
    other.fds_.clear();
  }
  return *this;
}

Descriptors::~Descriptors() { clear(); }

std::uint32_t Descriptors::add_dup(int fd) {
  fds_.reserve(fds_.size() + 1);  // may throw before anything is opened
  int copy = -1;
  if (std::error_code ec = dup_cloexec(fd, copy)) {
    throw_system_error(
        ec, "mproc: cannot pass a descriptor to another process: fcntl(F_DUPFD_CLOEXEC)");
  }
  fds_.push_back(copy);
  return static_cast<std::uint32_t>(fds_.size() - 1);
}

std::uint32_t Descriptors::adopt(int fd) {
  try {
    fds_.push_back(fd);
  } catch (...) {
    close_fd(fd);
    throw;
  }
  return static_cast<std::uint32_t>(fds_.size() - 1);
}

int Descriptors::at(std::uint32_t index) const {
  if (index >= fds_.size()) {
    throw DecodeError("mproc: a handle names descriptor " + std::to_string(index) + " of " +
                      std::to_string(fds_.size()) + " that travelled with it");
  }
  return fds_[index];
}

void Descriptors::clear() noexcept {
  for (int fd : fds_) close_fd(fd);
  fds_.clear();
}

TravelOut::TravelOut(Descriptors& out) noexcept : previous_(t_out) { t_out = &out; }
TravelOut::~TravelOut() { t_out = previous_; }
TravelIn::TravelIn(const Descriptors& in) noexcept : previous_(t_in) { t_in = &in; }
TravelIn::~TravelIn() { t_in = previous_; }

Descriptors* travel_out() noexcept { return t_out; }
const Descriptors* travel_in() noexcept { return t_in; }

}  // namespace mproc::detail
