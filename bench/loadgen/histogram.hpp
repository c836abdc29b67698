// A latency histogram of HdrHistogram's log-linear design.
//
// Design. Values are integers in [0, highest]. A histogram promises `significant_figures`
// decimal digits of precision everywhere in its range, at a fixed memory cost and an O(1)
// record. It does so by splitting the range into buckets that double in width, each cut into the
// same number of linear sub-buckets:
//
//   - sub_bucket_count is the smallest power of two >= 2 * 10^figures (2048 for 3 figures), so
//     a value just below a bucket's top still has 10^figures distinct neighbours;
//   - bucket 0 covers [0, sub_bucket_count * unit) in steps of one unit, where the unit is the
//     largest power of two <= lowest_discernible (1 unless asked otherwise);
//   - bucket b > 0 covers [2^b * half, 2^(b+1) * half) units in steps of 2^b units, where half
//     is sub_bucket_count / 2: its lower half would overlap bucket b-1, so only the upper half of
//     every bucket after the first is stored.
//
// So the counts array is (bucket_count + 1) * half long, and a value's slot follows from the
// position of its highest set bit (one count-leading-zeros instruction) and a shift. Two values
// in the same slot are "equivalent"; every query answers with a representative of a slot
// (lowest, highest or middle equivalent value), so answers are exact to the slot's width, which
// is at most value / 10^figures. The published test vectors (tests/unit/loadgen/histogram_test.cpp)
// check this implementation against the reference one.
//
// Coordinated omission: record_corrected() adds the samples a stalled closed-loop client did not
// take (value - k * interval for k = 1.. while above the interval), HdrHistogram's after-the-fact
// correction. loadgen's open loop measures from each request's intended send time instead (wrk2's
// way), which needs no correction; record_corrected() is kept for comparison and for the vectors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace iolab {

class Histogram {
 public:
  // lowest_discernible >= 1, highest >= 2 * lowest_discernible, 1 <= significant_figures <= 5.
  // Throws std::invalid_argument otherwise.
  Histogram(std::int64_t lowest_discernible, std::int64_t highest, int significant_figures);

  // Adds `count` samples of `value`. False (and nothing recorded) when value is outside
  // [0, highest].
  bool record(std::int64_t value, std::int64_t count = 1);
  // Records value, clamping it into [0, highest]; a clamped sample counts as saturated.
  void record_clamped(std::int64_t value);
  // Records value plus the samples a stalled client missed (see the header comment).
  bool record_corrected(std::int64_t value, std::int64_t expected_interval);
  // Adds every count of `other`, which must have the same configuration. False otherwise.
  bool add(const Histogram& other);
  void reset();

  std::int64_t total_count() const { return total_count_; }
  std::int64_t saturated_count() const { return saturated_; }
  std::int64_t min() const;  // lowest equivalent value of the smallest sample; 0 when empty
  std::int64_t max() const;  // highest equivalent value of the largest sample; 0 when empty
  double mean() const;
  double stddev() const;
  // The value below which `percentile` percent of the samples fall (highest equivalent value of
  // the slot holding the sample at that rank); 0 when empty.
  std::int64_t value_at_percentile(double percentile) const;

  std::int64_t lowest_equivalent(std::int64_t value) const;
  std::int64_t highest_equivalent(std::int64_t value) const;
  std::int64_t next_non_equivalent(std::int64_t value) const;
  std::int64_t median_equivalent(std::int64_t value) const;
  std::int64_t equivalent_range(std::int64_t value) const;
  bool equivalent(std::int64_t a, std::int64_t b) const;

  std::size_t counts_length() const { return counts_.size(); }
  std::int64_t highest_trackable() const { return highest_; }

  // Calls fn(from, to, count) for every non-empty slot in increasing order; [from, to) are the
  // values the slot stands for.
  template <typename Fn>
  void for_each_slot(Fn&& fn) const {
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i] == 0) continue;
      const std::int64_t v = value_at_index(i);
      fn(lowest_equivalent(v), next_non_equivalent(v), counts_[i]);
    }
  }

 private:
  std::size_t index_of(std::int64_t value) const;
  std::int64_t value_at_index(std::size_t index) const;
  int bucket_of(std::int64_t value) const;

  std::int64_t lowest_;
  std::int64_t highest_;
  int figures_;
  int unit_magnitude_;  // log2 of the unit
  int sub_bucket_half_count_magnitude_;
  std::int64_t sub_bucket_count_;
  std::int64_t sub_bucket_half_count_;
  std::int64_t sub_bucket_mask_;  // values below it (in units) land in bucket 0
  int bucket_count_;
  std::vector<std::int64_t> counts_;
  std::int64_t total_count_ = 0;
  std::int64_t saturated_ = 0;
  std::int64_t min_value_;  // raw extremes, reported as slot bounds
  std::int64_t max_value_ = 0;
};

}  // namespace iolab
