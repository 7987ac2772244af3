// The KeyStore's shared record cache (see key_cache.h).
#include "auth/key_cache.h"

#include <algorithm>
#include <mutex>

namespace redline::auth {

namespace {
// Invalidations remembered for reads in flight; a read older than all of them is distrusted.
constexpr std::size_t kRecentInvalidations = 1024;
}  // namespace

KeyCache::KeyCache(std::size_t max_entries)
    : max_entries_(std::max<std::size_t>(max_entries, 1)),
      max_absent_(std::max<std::size_t>(max_entries / 4, 1)) {}

std::optional<KeyCache::Entry> KeyCache::get(const std::string& sha) const {
  std::shared_lock lock(mu_);
  auto it = entries_.find(sha);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void KeyCache::put(const std::string& sha, Entry entry, uint64_t seen) {
  std::unique_lock lock(mu_);
  if (invalidated_since(sha, seen)) entry.epoch = 0;
  auto it = entries_.find(sha);
  if (it != entries_.end()) {
    if (!it->second.record) --absent_;
    if (!entry.record) ++absent_;
    it->second = std::move(entry);
    return;
  }
  if (!entry.record && absent_ >= max_absent_) return;  // not worth evicting a record for
  // Simple eviction: whichever entry iteration meets first (hash order, so effectively random).
  while (entries_.size() >= max_entries_ && !entries_.empty()) erase_locked(entries_.begin());
  if (!entry.record) ++absent_;
  entries_.emplace(sha, std::move(entry));
}

void KeyCache::invalidate(std::string_view sha) {
  std::unique_lock lock(mu_);
  ++generation_;
  recent_.emplace_back(generation_, std::string(sha));
  if (recent_.size() > kRecentInvalidations) recent_.pop_front();
  auto it = entries_.find(std::string(sha));
  if (it != entries_.end()) erase_locked(it);
}

void KeyCache::clear() {
  std::unique_lock lock(mu_);
  ++generation_;
  recent_.emplace_back(generation_, std::string());
  if (recent_.size() > kRecentInvalidations) recent_.pop_front();
  entries_.clear();
  absent_ = 0;
}

uint64_t KeyCache::generation() const {
  std::shared_lock lock(mu_);
  return generation_;
}

std::size_t KeyCache::size() const {
  std::shared_lock lock(mu_);
  return entries_.size();
}

bool KeyCache::invalidated_since(const std::string& sha, uint64_t seen) const {
  if (seen == generation_) return false;
  if (recent_.empty() || recent_.front().first > seen + 1) return true;  // forgotten: assume so
  for (auto it = recent_.rbegin(); it != recent_.rend() && it->first > seen; ++it) {
    if (it->second.empty() || it->second == sha) return true;
  }
  return false;
}

void KeyCache::erase_locked(std::unordered_map<std::string, Entry>::iterator it) {
  if (!it->second.record) --absent_;
  entries_.erase(it);
}

}  // namespace redline::auth
