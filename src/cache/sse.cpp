// The incremental SSE splitter and the event field helpers declared in sse.h. Line and field
// rules follow the WHATWG "event stream interpretation"; nothing here allocates more than one
// event's worth of bytes, and nothing interprets the data beyond the Anthropic stop check.
#include "cache/sse.h"

#include <boost/json.hpp>
#include <cstring>

namespace redline::cache {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// The first '\r' or '\n' at or after `from`, or npos. string_view::find_first_of calls
// memchr over the two-byte set once per input byte; this is two memchr scans per line.
std::size_t find_line_end(std::string_view s, std::size_t from) {
  const char* begin = s.data() + from;
  const std::size_t len = s.size() - from;
  const void* nl = std::memchr(begin, '\n', len);
  const std::size_t nl_at =
      nl != nullptr ? static_cast<std::size_t>(static_cast<const char*>(nl) - begin) : len;
  const void* cr = std::memchr(begin, '\r', nl_at);
  if (cr != nullptr) return from + static_cast<std::size_t>(static_cast<const char*>(cr) - begin);
  return nl != nullptr ? from + nl_at : std::string_view::npos;
}

// Calls f(name, value) for each field line of a stored event ("\n"-separated lines), skipping
// comments and empty lines. A line without a colon is a field with an empty value; one space
// after the colon is not part of the value.
template <class F>
void for_each_field(std::string_view event, F&& f) {
  while (!event.empty()) {
    const std::size_t nl = event.find('\n');
    std::string_view line = event.substr(0, nl);
    event = nl == std::string_view::npos ? std::string_view{} : event.substr(nl + 1);
    if (line.empty() || line.front() == ':') continue;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      f(line, std::string_view{});
      continue;
    }
    std::string_view value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    f(line.substr(0, colon), value);
  }
}

}  // namespace

SseSplitter::SseSplitter(std::size_t max_event_bytes) : max_event_bytes_(max_event_bytes) {}

bool SseSplitter::next_event(std::string_view bytes, std::size_t& at) {
  if (overflow_) return false;
  std::size_t i = at;
  while (!bom_done_ && i < bytes.size()) {
    if (bytes[i] == kBom[bom_matched_]) {
      ++i;
      bom_done_ = ++bom_matched_ == kBom.size();
    } else {
      bom_done_ = true;  // not a BOM: the bytes matched so far are ordinary text
      if (!append(kBom.substr(0, bom_matched_))) return false;
    }
  }
  while (i < bytes.size()) {
    if (after_cr_) {
      after_cr_ = false;
      if (bytes[i] == '\n') {
        ++i;
        continue;
      }
    }
    if (event_.empty() && bytes[i] != '\n' && bytes[i] != '\r') {
      // At an event's start: an event that lies whole in `bytes` with LF line ends (what
      // providers send) is its own text already; it is handed out as a view, not copied.
      // Its lines are walked once; at a CR, the end of `bytes` or the size bound the walk
      // stops and the event goes the copying way below (each byte is scanned at most twice).
      for (std::size_t line = i;;) {
        const std::size_t end = find_line_end(bytes, line);
        if (end == std::string_view::npos || bytes[end] == '\r' || end - i > max_event_bytes_ + 1) {
          break;
        }
        if (end == line) {  // the blank line: the event is everything before its LF
          direct_ = bytes.substr(i, line - 1 - i);
          at = end + 1;
          return true;
        }
        line = end + 1;
      }
    }
    const std::size_t end = find_line_end(bytes, i);
    const std::size_t stop = end == std::string_view::npos ? bytes.size() : end;
    if (stop > i && !append(bytes.substr(i, stop - i))) return false;
    if (end == std::string_view::npos) break;
    after_cr_ = bytes[end] == '\r';
    i = end + 1;
    if (end_line()) {
      at = i;
      return true;
    }
  }
  at = bytes.size();
  return false;
}

std::size_t SseSplitter::pending_bytes() const {
  return event_.size() + (bom_done_ ? 0 : bom_matched_);
}

void SseSplitter::reset() {
  event_.clear();
  event_.shrink_to_fit();
  line_start_ = 0;
  after_cr_ = false;
  bom_matched_ = 0;
  bom_done_ = false;
  overflow_ = false;
}

bool SseSplitter::append(std::string_view bytes) {
  // event_ holds at most max_event_bytes_ + 1 bytes: the line separators of completed lines
  // count towards the limit, and a line's final separator is only added after its text.
  if (bytes.size() > max_event_bytes_ || event_.size() > max_event_bytes_ - bytes.size()) {
    fail();
    return false;
  }
  event_.append(bytes);
  return true;
}

bool SseSplitter::end_line() {
  if (event_.size() != line_start_) {  // a non-empty line: keep it, start the next one
    event_.push_back('\n');
    line_start_ = event_.size();
    return false;
  }
  line_start_ = 0;
  return !event_.empty();  // a blank line ends the event (the last '\n' is not part of it)
}

void SseSplitter::fail() {
  overflow_ = true;
  event_.clear();
  event_.shrink_to_fit();
  line_start_ = 0;
}

std::string event_data(std::string_view event) {
  std::string data;
  bool first = true;
  for_each_field(event, [&](std::string_view name, std::string_view value) {
    if (name != "data") return;
    if (!first) data.push_back('\n');
    first = false;
    data.append(value);
  });
  return data;
}

bool may_have_member(std::string_view json, std::string_view name, char open, bool empty) {
  const char close = open == '{' ? '}' : ']';
  auto skip_space = [&](std::size_t i) {
    while (i < json.size() &&
           (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r')) {
      ++i;
    }
    return i;
  };
  for (std::size_t at = json.find(name, 1); at != std::string_view::npos;
       at = json.find(name, at + 1)) {
    std::size_t i = at + name.size();
    if (json[at - 1] != '"' || i >= json.size() || json[i] != '"') continue;
    i = skip_space(i + 1);
    if (i >= json.size() || json[i] != ':') continue;
    i = skip_space(i + 1);
    if (i >= json.size() || json[i] != open) continue;
    if (!empty) return true;
    i = skip_space(i + 1);
    if (i < json.size() && json[i] == close) return true;
  }
  return false;
}

bool event_may_have_member(std::string_view event, std::string_view name, char open, bool empty) {
  const auto second = event.find("\ndata");
  const bool split =
      second != std::string_view::npos &&
      (event.starts_with("data") || event.find("\ndata", second + 1) != std::string_view::npos);
  if (split) return event.find(name) != std::string_view::npos;
  return may_have_member(event, name, open, empty);
}

std::string_view event_type(std::string_view event) {
  std::string_view type;
  for_each_field(event, [&](std::string_view name, std::string_view value) {
    if (name == "event") type = value;
  });
  return type;
}

bool is_comment_only(std::string_view event) {
  bool any = false;
  for_each_field(event, [&](std::string_view, std::string_view) { any = true; });
  return !any;
}

bool is_openai_done(std::string_view event) {
  return event_data(event) == "[DONE]";
}

bool is_anthropic_stop(std::string_view event) {
  if (event_type(event) == "message_stop") return true;
  const std::string data = event_data(event);
  if (data.find("message_stop") == std::string::npos) return false;
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(data, ec);
  if (ec || !v.is_object()) return false;
  const boost::json::value* type = v.get_object().if_contains("type");
  return type != nullptr && type->is_string() && type->get_string() == "message_stop";
}

std::string frame_event(std::string_view event) {
  std::string out;
  out.reserve(event.size() + 2);
  out.append(event);
  out.append("\n\n");
  return out;
}

std::string frame_events(std::span<const std::string> events) {
  std::size_t n = 0;
  for (const auto& e : events) n += e.size() + 2;
  std::string out;
  out.reserve(n);
  for (const auto& e : events) {
    out.append(e);
    out.append("\n\n");
  }
  return out;
}

}  // namespace redline::cache
