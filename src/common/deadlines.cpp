// Coarse per-thread deadlines (see deadlines.h).
#include "common/deadlines.h"

#include <algorithm>

namespace redline::common {

Deadline::Deadline(DeadlineSet& set, Fire fire, void* context)
    : set_(set), fire_(fire), context_(context) {
  set_.add(this);
}

Deadline::~Deadline() { set_.remove(this); }

void Deadline::arm_at(Clock::time_point at) {
  at_ = at;
  set_.schedule(at);
}

DeadlineSet::DeadlineSet(const boost::asio::any_io_executor& executor)
    : timer_(std::in_place, executor), alive_(std::make_shared<Alive>(Alive{this})) {}

DeadlineSet::~DeadlineSet() { close(); }

void DeadlineSet::close() {
  alive_.reset();
  timer_.reset();
  timer_at_ = Clock::time_point::max();
}

void DeadlineSet::add(Deadline* d) {
  d->index_ = entries_.size();
  entries_.push_back(d);
}

void DeadlineSet::remove(Deadline* d) {
  const std::size_t i = d->index_;
  if (i >= entries_.size() || entries_[i] != d) return;
  entries_[i] = entries_.back();
  entries_[i]->index_ = i;
  entries_.pop_back();
}

void DeadlineSet::schedule(Clock::time_point at) {
  if (!timer_) return;
  // A pending wait that ends by at + granularity serves this deadline well enough.
  if (timer_at_ != Clock::time_point::max() && timer_at_ <= at + kGranularity) return;
  start_timer(at);
}

void DeadlineSet::start_timer(Clock::time_point at) {
  timer_at_ = at;
  timer_->expires_at(at);
  timer_->async_wait([weak = std::weak_ptr<Alive>(alive_)](const boost::system::error_code& ec) {
    auto alive = weak.lock();
    if (!alive || ec) return;  // re-armed (the new wait is pending) or closed
    alive->set->on_timer();
  });
}

void DeadlineSet::on_timer() {
  timer_at_ = Clock::time_point::max();
  const auto now = Clock::now();
  auto next = Clock::time_point::max();
  // A fired callback only cancels I/O (its completion is posted), so entries_ does not
  // change under the loop; the index check guards it anyway.
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    Deadline* d = entries_[i];
    if (d->at_ <= now) {
      d->at_ = Clock::time_point::max();
      d->fire_(d->context_);
    } else {
      next = std::min(next, d->at_);
    }
  }
  if (next != Clock::time_point::max() && timer_) start_timer(std::max(next, now + kGranularity));
}

}  // namespace redline::common
