// Counters summed into JSON and the last-request recorder (see stats.h). Only the
// read side builds JSON; the request path bumps relaxed atomics and, when recording is
// on, copies one request into reused buffers under a mutex.
#include "mock/stats.h"

#include <boost/json.hpp>
#include <cctype>

namespace redline::mock {

std::string_view counter_name(Counter c) {
  switch (c) {
#define REDLINE_MOCK_COUNTER_CASE(name) \
  case Counter::name:                   \
    return #name;
    REDLINE_MOCK_COUNTERS(REDLINE_MOCK_COUNTER_CASE)
#undef REDLINE_MOCK_COUNTER_CASE
  }
  return "unknown";
}

std::string stats_json(const std::vector<const Counters*>& per_thread) {
  boost::json::object out;
  for (std::size_t i = 0; i < kCounterCount; ++i) {
    auto c = static_cast<Counter>(i);
    uint64_t sum = 0;
    for (const Counters* t : per_thread) sum += t->get(c);
    out[counter_name(c)] = sum;
  }
  return boost::json::serialize(out);
}

void LastRequest::record(std::string_view method, std::string_view target,
                         const HeaderViews& headers, std::string_view body) {
  std::lock_guard lock(mutex_);
  method_.assign(method);
  target_.assign(target);
  if (headers_.size() < headers.size()) headers_.resize(headers.size());
  for (std::size_t i = 0; i < headers.size(); ++i) {
    headers_[i].first.assign(headers[i].first);
    headers_[i].second.assign(headers[i].second);
  }
  header_count_ = headers.size();
  body_.assign(body);
  present_ = true;
}

void LastRequest::clear() {
  std::lock_guard lock(mutex_);
  present_ = false;
  header_count_ = 0;
  method_.clear();
  target_.clear();
  body_.clear();
}

std::string LastRequest::json() const {
  std::lock_guard lock(mutex_);
  if (!present_) return {};
  boost::json::object headers;
  for (std::size_t i = 0; i < header_count_; ++i) {
    std::string name = headers_[i].first;
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::string& value = headers_[i].second;
    auto it = headers.find(name);
    if (it == headers.end()) {
      headers[name] = value;
    } else {  // a repeated field reads as one comma-joined value, as HTTP allows
      std::string joined(it->value().as_string());
      joined += ", ";
      joined += value;
      it->value() = joined;
    }
  }
  boost::json::object out;
  out["method"] = method_;
  out["target"] = target_;
  out["headers"] = std::move(headers);
  out["body"] = body_;
  return boost::json::serialize(out);
}

}  // namespace redline::mock
