// Shared provider calls and serving from them or from cache entries (see flight.h).
#include "proxy/flight.h"


#include "cache/replay.h"
#include "common/error_body.h"

namespace redline::proxy {

namespace asio = boost::asio;

bool is_terminal_event(Endpoint e, std::string_view event) {
  return e == Endpoint::kMessages ? cache::is_anthropic_stop(event) : cache::is_openai_done(event);
}

namespace {
bool iequal(std::string_view a, std::string_view b) {
  return boost::beast::iequals(a, b);
}

bool usage_filtered(Endpoint e) {
  return e == Endpoint::kChatCompletions || e == Endpoint::kCompletions;
}

// Events of a stored stream in the client's form: usage chunks only if it asked for them.
bool skip_event(Endpoint e, bool include_usage, std::string_view event) {
  return usage_filtered(e) && !include_usage && cache::is_usage_only_chunk(event);
}

std::optional<cache::ReplayApi> replay_api(Endpoint e) {
  switch (e) {
    case Endpoint::kChatCompletions:
      return cache::ReplayApi::kChatCompletions;
    case Endpoint::kCompletions:
      return cache::ReplayApi::kCompletions;
    case Endpoint::kMessages:
      return cache::ReplayApi::kMessages;
    default:
      return std::nullopt;
  }
}

std::optional<std::string> assemble(Endpoint e, std::span<const std::string> events) {
  auto api = replay_api(e);
  if (!api) return std::nullopt;
  return cache::assemble_answer(*api, events);
}

std::optional<std::vector<std::string>> synthesize(Endpoint e, std::string_view body,
                                                   bool include_usage) {
  auto api = replay_api(e);
  if (!api) return std::nullopt;
  auto events = cache::synthesize_events(*api, body, include_usage);
  if (events.empty()) return std::nullopt;
  return events;
}

void set_headers(http::ResponseHeader& h,
                 const std::vector<std::pair<std::string, std::string>>& headers) {
  for (const auto& [k, v] : headers) h.set(k, v);
}

asio::awaitable<bool> write_events(http::Exchange& ex, Endpoint e, bool include_usage,
                                   std::span<const std::string> events) {
  std::string out;
  for (const auto& ev : events) {
    if (skip_event(e, include_usage, ev)) continue;
    out += ev;
    out += "\n\n";
  }
  co_return co_await ex.write_chunk(out);
}
}  // namespace

bool is_replayed_header(std::string_view n) {
  static constexpr std::string_view kReplayed[] = {"openai-model", "openai-organization",
                                                   "openai-project", "openai-version",
                                                   "anthropic-organization-id"};
  for (auto r : kReplayed) {
    if (iequal(n, r)) return true;
  }
  return false;
}

// --- producer -----------------------------------------------------------------------------

void Flight::notify_locked(std::vector<Waiter>& out) {
  ++version_;
  out.swap(waiters_);
}

void Flight::wake(std::vector<Waiter>& waiters) {
  // A waiter on this thread is woken at once (its completion is queued now); one on another
  // thread through its executor (a timer is not safe to touch across threads).
  for (auto& w : waiters) {
    auto t = w.timer;
    asio::dispatch(t->get_executor(), [t] { t->cancel(); });
  }
}

asio::awaitable<bool> Flight::respond(http::Response& response) {
  std::vector<Waiter> wake_up;
  {
    std::lock_guard lock(mu_);
    status_ = static_cast<int>(response.result_int());
    content_type_ = std::string(response[boost::beast::http::field::content_type]);
    for (const auto& f : response.base()) {
      if (is_replayed_header(f.name_string()) ||
          f.name() == boost::beast::http::field::retry_after) {
        headers_.emplace_back(std::string(f.name_string()), std::string(f.value()));
      }
    }
    body_ = std::move(response.body());
    headers_ready_ = true;
    finished_ = true;
    notify_locked(wake_up);
  }
  wake(wake_up);
  co_return !gone();
}

asio::awaitable<bool> Flight::respond_error(int status, std::string_view message,
                                            std::string_view code, std::string_view retry_after) {
  http::Response res{static_cast<boost::beast::http::status>(status), 11};
  res.set(boost::beast::http::field::content_type, "application/json");
  if (!retry_after.empty()) res.set(boost::beast::http::field::retry_after, retry_after);
  res.body() = openai_error_body(message, error_type_for_status(status), code);
  co_return co_await respond(res);
}

asio::awaitable<bool> Flight::begin_stream(http::ResponseHeader& header) {
  std::vector<Waiter> wake_up;
  {
    std::lock_guard lock(mu_);
    status_ = static_cast<int>(header.result_int());
    content_type_ = std::string(header[boost::beast::http::field::content_type]);
    for (const auto& f : header) {
      if (is_replayed_header(f.name_string())) {
        headers_.emplace_back(std::string(f.name_string()), std::string(f.value()));
      }
    }
    streamed_ = true;
    headers_ready_ = true;
    notify_locked(wake_up);
  }
  wake(wake_up);
  co_return !gone();
}

asio::awaitable<bool> Flight::write_chunk(std::string_view data) {
  std::vector<Waiter> wake_up;
  {
    std::lock_guard lock(mu_);
    const std::size_t before = events_.size();
    splitter_.feed(data, events_);
    for (std::size_t i = before; i < events_.size(); ++i) {
      if (is_terminal_event(endpoint_, events_[i])) terminal_seen_ = true;
    }
    if (events_.size() != before) notify_locked(wake_up);
  }
  wake(wake_up);
  co_return !gone();
}

asio::awaitable<bool> Flight::end_stream() {
  std::vector<Waiter> wake_up;
  {
    std::lock_guard lock(mu_);
    finished_ = true;
    notify_locked(wake_up);
  }
  wake(wake_up);
  co_return !gone();
}

bool Flight::gone() const {
  return cancel_when_unattached_ && attached_.load(std::memory_order_acquire) == 0;
}

void Flight::set_producer(asio::any_io_executor executor) {
  std::lock_guard lock(mu_);
  producer_ = std::move(executor);
}

common::WatchGuard Flight::watch_gone(common::Interrupt& stop) {
  auto w = std::make_shared<GoneWatch>();
  w->stop = &stop;
  {
    std::lock_guard lock(mu_);
    gone_watch_ = w;
  }
  // (After publishing the watch: a client leaving from now on posts the stop.)
  if (gone()) stop.fire();
  return {&Flight::end_watch, this};
}

void Flight::end_watch(void* self) {
  auto* f = static_cast<Flight*>(self);
  std::shared_ptr<GoneWatch> w;
  {
    std::lock_guard lock(f->mu_);
    w = std::move(f->gone_watch_);
  }
  if (w) w->stop = nullptr;
}

void Flight::publish_entry(const cache::Entry& entry) {
  std::vector<Waiter> wake_up;
  {
    std::lock_guard lock(mu_);
    status_ = entry.status;
    content_type_ = entry.content_type;
    headers_ = entry.headers;
    streamed_ = entry.streamed;
    body_ = entry.body;
    events_ = entry.events;
    terminal_seen_ = entry.streamed;
    headers_ready_ = true;
    finished_ = true;
    notify_locked(wake_up);
  }
  wake(wake_up);
}

void Flight::release() {
  std::vector<Waiter> wake_up;
  {
    std::lock_guard lock(mu_);
    if (released_) return;
    released_ = true;
    notify_locked(wake_up);
  }
  wake(wake_up);
}

bool Flight::released() const {
  std::lock_guard lock(mu_);
  return released_;
}

bool Flight::complete() const {
  std::lock_guard lock(mu_);
  if (!finished_ || status_ != 200) return false;
  return streamed_ ? terminal_seen_ && splitter_.pending_bytes() == 0 && !splitter_.overflow()
                   : true;
}

cache::Entry Flight::to_entry(int64_t created_unix_ms, uint32_t ttl_seconds) const {
  std::lock_guard lock(mu_);
  cache::Entry e;
  e.status = status_;
  e.content_type = content_type_;
  for (const auto& h : headers_) {
    if (is_replayed_header(h.first)) e.headers.push_back(h);
  }
  e.created_unix_ms = created_unix_ms;
  e.ttl_seconds = ttl_seconds;
  e.streamed = streamed_;
  if (streamed_) {
    e.events = events_;
  } else {
    e.body = body_;
  }
  return e;
}

std::optional<Usage> Flight::usage() const {
  std::lock_guard lock(mu_);
  if (!finished_ || status_ != 200) return std::nullopt;
  return streamed_ ? usage_from_events(events_) : usage_from_body(body_);
}

std::size_t Flight::payload_bytes() const {
  std::lock_guard lock(mu_);
  std::size_t n = body_.size();
  for (const auto& ev : events_) n += ev.size() + 2;
  return n;
}

// --- consumers ----------------------------------------------------------------------------

void Flight::attach() {
  attached_.fetch_add(1, std::memory_order_acq_rel);
}

void Flight::detach() {
  if (attached_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  std::shared_ptr<GoneWatch> w;
  asio::any_io_executor producer;
  {
    std::lock_guard lock(mu_);
    w = gone_watch_;
    producer = producer_;
  }
  if (!w || !producer) return;
  asio::post(producer, [self = shared_from_this(), w] {
    if (w->stop && self->gone()) w->stop->fire();
  });
}

asio::awaitable<bool> Flight::wait_change(http::Exchange& ex, uint64_t seen) {
  auto exec = co_await asio::this_coro::executor;
  auto timer = std::make_shared<asio::steady_timer>(exec, asio::steady_timer::time_point::max());
  {
    std::lock_guard lock(mu_);
    if (version_ != seen) co_return true;
    waiters_.push_back(Waiter{timer});
  }
  // The client leaving cancels the wait (a readiness watch on its socket, no coroutine).
  common::Interrupt stop;
  stop.hook([](void* t) { static_cast<asio::steady_timer*>(t)->cancel(); }, timer.get());
  {
    const auto watch = ex.watch_client(stop);
    if (!stop.fired()) co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  }
  co_return !stop.fired();
}

asio::awaitable<void> Flight::serve(http::Exchange& ex, ServeOptions opts,
                                    UpstreamOutcome& outcome) {
  attach();
  // Wait for the response header (or the whole answer).
  uint64_t seen = 0;
  bool streamed = false;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      seen = version_;
      if (headers_ready_) {
        streamed = streamed_;
        break;
      }
    }
    if (!co_await wait_change(ex, seen)) {
      detach();
      co_return;
    }
  }
  if (streamed && opts.stream) {
    co_await serve_stream(ex, opts);
  } else {
    co_await serve_json(ex, opts);
  }
  {
    std::lock_guard lock(mu_);
    if (released_) outcome = outcome_;  // released only after the call returned
  }
  detach();
}

asio::awaitable<void> Flight::serve_json(http::Exchange& ex, ServeOptions opts) {
  // The whole answer first (for write-through: stored, too).
  for (;;) {
    uint64_t seen = 0;
    {
      std::lock_guard lock(mu_);
      seen = version_;
      if (finished_ && released_) break;
    }
    if (!co_await wait_change(ex, seen)) co_return;
  }
  // Finished and released: nothing changes any more, but reads stay under the lock so the
  // happens-before is explicit (for readers and for TSan).
  std::unique_lock lock(mu_);
  const bool ok = status_ == 200;
  if (streamed_) {
    // A stream served to a non-streaming client: the assembled JSON, if it completed.
    std::optional<std::string> body;
    if (ok && terminal_seen_) body = assemble(endpoint_, events_);
    auto headers = headers_;
    lock.unlock();
    if (!body) {
      co_await ex.respond_error(502, "the provider's stream failed or could not be assembled",
                                "upstream_stream_error");
      co_return;
    }
    if (opts.before_end) co_await opts.before_end();
    http::Response res{boost::beast::http::status::ok, 11};
    set_headers(res.base(), headers);
    res.set(boost::beast::http::field::content_type, "application/json");
    res.body() = std::move(*body);
    co_await ex.respond(res);
    co_return;
  }
  if (opts.stream && ok) {
    // A JSON answer served to a streaming client: synthesized events.
    auto events = synthesize(endpoint_, body_, opts.include_usage);
    auto headers = headers_;
    lock.unlock();
    if (events) {
      if (opts.before_end) co_await opts.before_end();
      http::ResponseHeader h;
      h.result(boost::beast::http::status::ok);
      set_headers(h, headers);
      h.set(boost::beast::http::field::content_type, "text/event-stream");
      h.set(boost::beast::http::field::cache_control, "no-cache");
      if (!co_await ex.begin_stream(h)) co_return;
      if (!co_await write_events(ex, endpoint_, true, *events)) co_return;
      co_await ex.end_stream();
      co_return;
    }
    lock.lock();
  }
  http::Response res{static_cast<boost::beast::http::status>(status_), 11};
  set_headers(res.base(), headers_);
  if (!content_type_.empty()) res.set(boost::beast::http::field::content_type, content_type_);
  res.body() = body_;
  lock.unlock();
  if (ok && opts.before_end) co_await opts.before_end();
  co_await ex.respond(res);
}

asio::awaitable<void> Flight::serve_stream(http::Exchange& ex, ServeOptions opts) {
  http::ResponseHeader h;
  {
    std::lock_guard lock(mu_);
    h.result(static_cast<unsigned>(status_));
    set_headers(h, headers_);
    h.set(boost::beast::http::field::content_type,
          content_type_.empty() ? std::string("text/event-stream") : content_type_);
    h.set(boost::beast::http::field::cache_control, "no-cache");
  }
  if (!co_await ex.begin_stream(h)) co_return;
  std::size_t sent = 0;
  bool hook_pending = static_cast<bool>(opts.before_end);
  for (;;) {
    std::string out;
    uint64_t seen = 0;
    bool done = false;
    bool run_hook = false;
    {
      std::lock_guard lock(mu_);
      seen = version_;
      while (sent < events_.size()) {
        const auto& ev = events_[sent];
        // The end of the answer waits until it is stored (write-through), and until the
        // client's before_end hook ran.
        if (is_terminal_event(endpoint_, ev) && (!released_ || hook_pending)) {
          run_hook = released_ && hook_pending;
          break;
        }
        if (!skip_event(endpoint_, opts.include_usage, ev)) {
          out += ev;
          out += "\n\n";
        }
        ++sent;
      }
      done = finished_ && released_ && sent == events_.size();
    }
    if (!out.empty() && !co_await ex.write_chunk(out)) co_return;
    if (run_hook) {
      hook_pending = false;
      co_await opts.before_end();
      continue;  // now the terminal event goes out
    }
    if (done) break;
    if (!co_await wait_change(ex, seen)) co_return;
  }
  co_await ex.end_stream();
}

// --- table --------------------------------------------------------------------------------

std::pair<std::shared_ptr<Flight>, bool> FlightTable::join_or_create(const cache::KeyDigest& key,
                                                                     Endpoint endpoint) {
  std::lock_guard lock(mu_);
  auto [it, created] = flights_.try_emplace(key);
  if (created) it->second = std::make_shared<Flight>(endpoint, true);
  return {it->second, created};
}

void FlightTable::remove(const cache::KeyDigest& key, const Flight* flight) {
  std::lock_guard lock(mu_);
  auto it = flights_.find(key);
  if (it != flights_.end() && it->second.get() == flight) flights_.erase(it);
}

std::optional<cache::Entry> FlightTable::answered(const cache::KeyDigest& key) const {
  std::shared_ptr<Flight> flight;
  {
    std::lock_guard lock(mu_);
    auto it = flights_.find(key);
    if (it == flights_.end()) return std::nullopt;
    flight = it->second;
  }
  if (!flight->released() || !flight->complete()) return std::nullopt;
  // No TTL: the entry only answers this request (it is not stored or refreshed from here).
  return flight->to_entry(cache::now_unix_ms(), 0);
}

std::size_t FlightTable::size() const {
  std::lock_guard lock(mu_);
  return flights_.size();
}

// --- serving entries -----------------------------------------------------------------------

asio::awaitable<bool> serve_entry(http::Exchange& ex, Endpoint endpoint, const cache::Entry& e,
                                  bool stream, bool include_usage) {
  if (e.streamed && stream) {
    http::ResponseHeader h;
    h.result(static_cast<unsigned>(e.status));
    set_headers(h, e.headers);
    h.set(boost::beast::http::field::content_type,
          e.content_type.empty() ? std::string("text/event-stream") : e.content_type);
    h.set(boost::beast::http::field::cache_control, "no-cache");
    if (!co_await ex.begin_stream(h)) co_return true;
    if (!co_await write_events(ex, endpoint, include_usage, e.events)) co_return true;
    co_await ex.end_stream();
    co_return true;
  }
  if (e.streamed) {
    auto body = assemble(endpoint, e.events);
    if (!body) co_return false;
    http::Response res{static_cast<boost::beast::http::status>(e.status), 11};
    set_headers(res.base(), e.headers);
    res.set(boost::beast::http::field::content_type, "application/json");
    res.body() = std::move(*body);
    co_await ex.respond(res);
    co_return true;
  }
  if (stream) {
    auto events = synthesize(endpoint, e.body, include_usage);
    if (!events) co_return false;
    http::ResponseHeader h;
    h.result(static_cast<unsigned>(e.status));
    set_headers(h, e.headers);
    h.set(boost::beast::http::field::content_type, "text/event-stream");
    h.set(boost::beast::http::field::cache_control, "no-cache");
    if (!co_await ex.begin_stream(h)) co_return true;
    if (!co_await write_events(ex, endpoint, true, *events)) co_return true;
    co_await ex.end_stream();
    co_return true;
  }
  http::Response res{static_cast<boost::beast::http::status>(e.status), 11};
  set_headers(res.base(), e.headers);
  if (!e.content_type.empty()) res.set(boost::beast::http::field::content_type, e.content_type);
  res.body() = e.body;
  co_await ex.respond(res);
  co_return true;
}

}  // namespace redline::proxy
