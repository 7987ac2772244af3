// libFuzzer target for the RESP3 parser: the first bytes choose chunk sizes, the rest is fed
// to the parser in those chunks the way a connection feeds socket reads. It must never crash,
// hang or disagree with a whole-buffer parse. Seed corpus: fuzz/corpus/resp3/.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "redis/resp3.h"

namespace {

using redline::redis::Parser;
using redline::redis::ParserLimits;
using redline::redis::Reply;

struct Outcome {
  std::vector<Reply> replies;
  bool failed = false;
};

Outcome run(std::string_view wire, const uint8_t* splits, size_t nsplits) {
  ParserLimits limits;
  limits.max_bulk = 1 << 20;  // keep the fuzzer's memory bounded
  limits.max_elements = 1 << 16;
  Parser p(limits);
  Outcome out;
  std::string buf;
  size_t off = 0, i = 0;
  while (off < wire.size()) {
    size_t n = nsplits ? 1 + splits[i++ % nsplits] % 16 : wire.size();
    n = std::min(n, wire.size() - off);
    buf.append(wire.substr(off, n));
    off += n;
    for (;;) {
      auto step = p.feed(buf);
      if (step.consumed > buf.size()) std::abort();
      buf.erase(0, step.consumed);
      if (step.status == Parser::Status::kReply) {
        out.replies.push_back(p.take());
        (void)out.replies.back().debug_string();
        continue;
      }
      if (step.status == Parser::Status::kError) {
        if (p.error().empty()) std::abort();
        out.failed = true;
        return out;
      }
      break;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t nsplits = size ? data[0] % 8 : 0;
  if (size < 1 + nsplits) return 0;
  const uint8_t* splits = data + 1;
  std::string_view wire(reinterpret_cast<const char*>(data + 1 + nsplits), size - 1 - nsplits);
  Outcome chunked = run(wire, splits, nsplits);
  Outcome whole = run(wire, nullptr, 0);
  // Chunking must not change the result: same replies before any error, same error verdict.
  if (chunked.failed != whole.failed) std::abort();
  if (chunked.replies != whole.replies) std::abort();
  return 0;
}
