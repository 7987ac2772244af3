// Server-sent events as the response cache sees them: an incremental splitter that cuts a byte
// stream (arriving in arbitrary chunks) into complete events, and small helpers that read an
// event's fields and frame it again for the wire. It follows the WHATWG SSE parsing rules for
// lines and fields; it does not know what the events mean (see replay.h) and does no I/O.
//
// An "event" here is the text of one event block: its lines (comments and fields) joined with
// "\n", without the blank line that terminated it, e.g. "event: message_stop\ndata: {...}".
// The cache stores events in this form and frame_event() turns one back into wire bytes.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redline::cache {

inline constexpr std::size_t kDefaultMaxSseEventBytes = std::size_t{1} << 20;  // 1 MiB

// Splits an SSE byte stream into complete events. Lines may end in "\n", "\r\n" or "\r" (a
// stored event always uses "\n"), a chunk boundary may fall anywhere (also between "\r" and
// "\n"), and one leading UTF-8 byte order mark is dropped, as the spec says. Runs of blank
// lines produce no empty events. Comment lines (": ping") are kept in their event; an event
// made only of comments is emitted too, so a replay can be byte-faithful (is_comment_only()).
//
// Memory is bounded: an event longer than max_event_bytes puts the splitter in the overflow
// state, which drops what it held and ignores all further input (the stream cannot be cached).
class SseSplitter {
 public:
  explicit SseSplitter(std::size_t max_event_bytes = kDefaultMaxSseEventBytes);

  // Appends to `out_events` every event that `bytes` completes. A no-op after overflow().
  void feed(std::string_view bytes, std::vector<std::string>& out_events) {
    feed_each(bytes, [&out_events](std::string_view event) { out_events.emplace_back(event); });
  }
  // The same, calling `on_event(std::string_view)` with each completed event instead of
  // copying it out: the view is valid during the call only (a reader that keeps few events,
  // such as the usage reader, copies just those).
  template <class OnEvent>
  void feed_each(std::string_view bytes, OnEvent&& on_event) {
    std::size_t at = 0;
    while (next_event(bytes, at)) {
      if (!direct_.empty()) {
        on_event(std::exchange(direct_, std::string_view{}));
      } else {
        on_event(std::string_view(event_.data(), event_.size() - 1));  // without its last '\n'
        event_.clear();
      }
    }
  }

  // True once an event grew past max_event_bytes; stays true until reset().
  bool overflow() const { return overflow_; }
  // Bytes held for the event (and byte order mark) not yet complete. Non-zero when a stream
  // ends here means it ended inside an event.
  std::size_t pending_bytes() const;
  std::size_t max_event_bytes() const { return max_event_bytes_; }
  // Back to the state of a new stream (same limit).
  void reset();

 private:
  // Consumes `bytes` from `at` until an event is complete (true: direct_ is its text, a view
  // of `bytes`, or else event_ holds it followed by '\n'; `at` is past its blank line) or the
  // bytes run out (false).
  bool next_event(std::string_view bytes, std::size_t& at);
  bool append(std::string_view bytes);
  // A line ended: true when it was the blank line that completes a (non-empty) event.
  bool end_line();
  void fail();

  std::size_t max_event_bytes_;
  std::string_view direct_;      // an event found whole in the bytes fed (next_event)
  std::string event_;            // completed lines of the current event, each followed by '\n',
                                 // then the current line so far
  std::size_t line_start_ = 0;   // where the current line starts in event_
  bool after_cr_ = false;        // the last byte seen was '\r': a following '\n' belongs to it
  std::size_t bom_matched_ = 0;  // leading bytes matching the UTF-8 BOM so far
  bool bom_done_ = false;        // past the point where a BOM could appear
  bool overflow_ = false;
};

// The event's data: its "data" field values joined with "\n" (one space after the colon is
// dropped, as for every field). Empty when it has no data lines.
std::string event_data(std::string_view event);

// Whether the JSON text may have a member `name` (unquoted here) whose value opens with
// `open` ('{' or '['), or with `empty` is an empty one ("{}" / "[]", whitespace allowed): the
// quoted name, a colon and that value, written out. Never false for such a member as JSON
// writers spell it (a name written with \u escapes aside); may be true for text in a string,
// so true only says a parse is worth it. Lets the stream's per-event checks skip the parse
// for the usual event (OpenAI's chunks carry "usage":null when usage was asked for).
bool may_have_member(std::string_view json, std::string_view name, char open, bool empty = false);

// may_have_member for an event's data: its JSON as it lies in the event when the event has
// one data line (as every provider sends them); an event whose data is split over several
// lines (legal SSE) only needs `name` somewhere in it.
bool event_may_have_member(std::string_view event, std::string_view name, char open,
                           bool empty = false);

// The event's "event" field (the last one when repeated), or "" when it has none. A view into
// `event`.
std::string_view event_type(std::string_view event);

// True when the event has no field at all, only comment lines (keep-alives such as ": ping").
bool is_comment_only(std::string_view event);

// OpenAI's end of stream: data is exactly "[DONE]".
bool is_openai_done(std::string_view event);

// Anthropic's end of stream: event type message_stop, or data that is a JSON object whose
// "type" is "message_stop".
bool is_anthropic_stop(std::string_view event);

// The event as wire bytes: the event followed by the blank line that ends it ("\n\n").
std::string frame_event(std::string_view event);

// Every event framed, concatenated: a whole replayed stream body.
std::string frame_events(std::span<const std::string> events);

}  // namespace redline::cache
