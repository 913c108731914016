// Dependency checker (see dep_check.h).
//
// Pass 1 walks the program in order over an interval map of the arena: each segment records its
// last writer and the readers since that write, split on access boundaries. An access by j yields
// the earlier instructions it must follow: a read, the last writers of the overlapping segments; a
// write, those plus the readers since. A requirement that is a direct dependency of j is met;
// the rest become queries "is k an ancestor of j?".
// Pass 2 answers the queries exactly with ancestor bitsets restricted to the queried instructions
// (in chunks of kChunk targets), built in instruction order from the dependency lists: memory is
// n * kChunk / 8 bytes whatever the program size, time deps * (targets / 64) word operations.
#include "dep_check.h"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>

#include "program.h"

namespace nemu {

namespace {

struct Access {
  int32_t instr;
  int32_t buf;
};

struct Segment {
  int64_t end;
  Access writer{-1, -1};
  std::vector<Access> readers;  // since the writer
};

enum class Hazard { RAW, WAR, WAW };
const char* hazard_name(Hazard h) { return h == Hazard::RAW ? "RAW" : h == Hazard::WAR ? "WAR" : "WAW"; }

struct Query {
  int32_t j, k;           // j must be ordered after k
  Hazard kind;
  int32_t buf_j, buf_k;   // the buffers through which they touch the range
  int64_t lo, hi;         // overlapping arena range (floats)
};

constexpr int kChunk = 2048;  // ancestor targets per pass: 256 bytes of bitset per instruction

std::string who(const std::vector<Instr>& instrs, int32_t i) {
  const OpDef* d = find_op(instrs[i].op);
  return "instruction " + std::to_string(i) + " (" + (d ? d->name : "op " + std::to_string(instrs[i].op)) + ")";
}

class ArenaMap {
 public:
  // Splits so that a segment boundary lies at x (if x is inside a segment).
  void split(int64_t x) {
    auto it = segs_.upper_bound(x);
    if (it == segs_.begin()) return;
    --it;
    if (it->first < x && x < it->second.end) {
      Segment right = it->second;
      it->second.end = x;
      segs_.emplace(x, std::move(right));
    }
  }
  // Calls f(start, segment) for every segment overlapping [lo, hi), after creating empty
  // segments for the untouched gaps and splitting at lo and hi.
  template <class F>
  void for_range(int64_t lo, int64_t hi, F&& f) {
    split(lo);
    split(hi);
    int64_t x = lo;
    auto it = segs_.lower_bound(lo);
    while (x < hi) {
      if (it == segs_.end() || it->first > x) {  // gap [x, next start)
        const int64_t e = it == segs_.end() ? hi : std::min(hi, it->first);
        it = segs_.emplace_hint(it, x, Segment{e, {-1, -1}, {}});
      }
      f(it->first, it->second);
      x = it->second.end;
      ++it;
    }
  }
  // After a write of [lo, hi) by w: one segment with writer w and no readers.
  void overwrite(int64_t lo, int64_t hi, Access w) {
    auto first = segs_.lower_bound(lo);
    auto last = segs_.lower_bound(hi);
    segs_.erase(first, last);
    segs_.emplace(lo, Segment{hi, w, {}});
  }

 private:
  std::map<int64_t, Segment> segs_;
};

}  // namespace

void check_dependencies(const std::vector<Instr>& instrs, const std::vector<const OpDef*>& defs,
                        const std::vector<int64_t>& deps,
                        const std::vector<BufferDesc>& buffers) {
  const int32_t n = static_cast<int32_t>(instrs.size());
  ArenaMap arena;
  std::vector<Query> queries;
  std::vector<int32_t> direct(n, -1), seen(n, -1);  // stamps: == j when k is a direct dep / already required of j
  for (int32_t j = 0; j < n; ++j) {
    const Instr& in = instrs[j];
    for (int64_t e = 0; e < in.dep_count; ++e) direct[deps[in.dep_begin + e]] = j;
    auto need = [&](const Access& k, Hazard kind, int32_t buf, int64_t lo, int64_t hi) {
      if (k.instr < 0 || k.instr == j || direct[k.instr] == j || seen[k.instr] == j) return;
      seen[k.instr] = j;
      queries.push_back({j, k.instr, kind, buf, k.buf, lo, hi});
    };
    for (int pass = 0; pass < 2; ++pass) {  // reads see the state before j; then j's writes
      for (int o = 0; o < in.n_operands; ++o) {
        const bool w = operand_is_written(*defs[j], in, o);
        if (w != (pass == 1)) continue;
        const int32_t b = in.operand[o];
        const BufferDesc& d = buffers[b];
        if (d.kind != BufKind::Intermediate || d.numel == 0) continue;
        const int64_t lo = d.arena_offset, hi = d.arena_offset + d.numel;
        arena.for_range(lo, hi, [&](int64_t s, Segment& seg) {
          // a write after readers needs only them: each was itself proven to follow the writer
          if (!w || seg.readers.empty()) need(seg.writer, w ? Hazard::WAW : Hazard::RAW, b, s, seg.end);
          if (w) {
            for (const Access& r : seg.readers) need(r, Hazard::WAR, b, s, seg.end);
          } else if (seg.readers.empty() || seg.readers.back().instr != j) {
            seg.readers.push_back({j, b});
          }
        });
        if (w) arena.overwrite(lo, hi, {j, b});
      }
    }
  }
  if (queries.empty()) return;

  // Pass 2: is k an ancestor of j? Targets are the distinct k's, answered kChunk at a time.
  std::vector<int32_t> targets;
  targets.reserve(queries.size());
  for (const Query& q : queries) targets.push_back(q.k);
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  std::vector<int32_t> slot(n, -1);  // target -> bit in the current chunk
  std::sort(queries.begin(), queries.end(), [](const Query& a, const Query& b) { return a.k < b.k; });
  const Query* bad = nullptr;
  size_t n_bad = 0;
  size_t qi = 0;
  for (size_t c0 = 0; c0 < targets.size(); c0 += kChunk) {
    const size_t c1 = std::min(targets.size(), c0 + kChunk);
    const int words = static_cast<int>((c1 - c0 + 63) / 64);
    for (size_t t = c0; t < c1; ++t) slot[targets[t]] = static_cast<int32_t>(t - c0);
    const int32_t from = targets[c0];  // no instruction before the first target has one as an ancestor
    std::vector<uint64_t> anc(static_cast<size_t>(n - from) * words, 0);
    auto row = [&](int32_t i) { return anc.data() + static_cast<size_t>(i - from) * words; };
    for (int32_t i = from; i < n; ++i) {
      uint64_t* r = row(i);
      const Instr& in = instrs[i];
      for (int64_t e = 0; e < in.dep_count; ++e) {
        const int32_t d = static_cast<int32_t>(deps[in.dep_begin + e]);
        if (d < from) continue;
        const uint64_t* p = row(d);
        for (int w = 0; w < words; ++w) r[w] |= p[w];
        if (slot[d] >= 0) r[slot[d] / 64] |= uint64_t{1} << (slot[d] % 64);
      }
    }
    for (; qi < queries.size() && queries[qi].k <= targets[c1 - 1]; ++qi) {
      const Query& q = queries[qi];
      const int32_t s = slot[q.k];
      if (!(row(q.j)[s / 64] >> (s % 64) & 1)) {
        ++n_bad;
        if (!bad || q.j < bad->j || (q.j == bad->j && q.k > bad->k)) bad = &q;  // first j, nearest k
      }
    }
    for (size_t t = c0; t < c1; ++t) slot[targets[t]] = -1;
  }
  if (!bad) return;
  const Query& q = *bad;
  const char* verb = q.kind == Hazard::RAW ? "reads" : "writes";
  const char* their = q.kind == Hazard::WAR ? "read" : "wrote";
  std::string msg = "dependency check: " + who(instrs, q.j) + " " + verb + " buffer " + std::to_string(q.buf_j) +
                    ", arena [" + std::to_string(q.lo) + ", " + std::to_string(q.hi) + "), which " + who(instrs, q.k) +
                    " " + their + " as buffer " + std::to_string(q.buf_k) + " (" + hazard_name(q.kind) +
                    " hazard), but instruction " + std::to_string(q.j) + " is not ordered after instruction " +
                    std::to_string(q.k) + " by any dependency path";
  if (n_bad > 1) msg += " (" + std::to_string(n_bad - 1) + " more unordered hazard(s))";
  throw std::invalid_argument(msg);
}

}  // namespace nemu
