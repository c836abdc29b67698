#include "histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace iolab {

namespace {

// ceil(log2(x)) for x >= 1.
int ceil_log2(std::int64_t x) {
  int bits = 0;
  while ((std::int64_t{1} << bits) < x) ++bits;
  return bits;
}

}  // namespace

Histogram::Histogram(std::int64_t lowest_discernible, std::int64_t highest, int significant_figures)
    : lowest_(lowest_discernible), highest_(highest), figures_(significant_figures) {
  if (lowest_discernible < 1) throw std::invalid_argument("histogram: lowest value must be >= 1");
  if (significant_figures < 1 || significant_figures > 5) {
    throw std::invalid_argument("histogram: significant figures must be 1..5");
  }
  if (highest < 2 * lowest_discernible) {
    throw std::invalid_argument("histogram: highest value must be >= 2 * lowest value");
  }
  std::int64_t single_unit_range = 2;
  for (int i = 0; i < significant_figures; ++i) single_unit_range *= 10;
  unit_magnitude_ = std::bit_width(static_cast<std::uint64_t>(lowest_discernible)) - 1;
  sub_bucket_half_count_magnitude_ = std::max(ceil_log2(single_unit_range), 1) - 1;
  sub_bucket_count_ = std::int64_t{1} << (sub_bucket_half_count_magnitude_ + 1);
  sub_bucket_half_count_ = sub_bucket_count_ / 2;
  sub_bucket_mask_ = (sub_bucket_count_ - 1) << unit_magnitude_;
  if (unit_magnitude_ + sub_bucket_half_count_magnitude_ + 1 > 62) {
    throw std::invalid_argument("histogram: lowest value and precision leave no range");
  }

  // Buckets double in width until one reaches past `highest`.
  std::int64_t first_untracked = sub_bucket_count_ << unit_magnitude_;
  bucket_count_ = 1;
  while (first_untracked <= highest) {
    if (first_untracked > std::numeric_limits<std::int64_t>::max() / 2) {
      ++bucket_count_;
      break;
    }
    first_untracked <<= 1;
    ++bucket_count_;
  }
  counts_.assign(static_cast<std::size_t>((bucket_count_ + 1) * sub_bucket_half_count_), 0);
  min_value_ = std::numeric_limits<std::int64_t>::max();
}

int Histogram::bucket_of(std::int64_t value) const {
  // The highest set bit of value (or of the mask, for values small enough for bucket 0) says
  // how many times the bucket width doubled.
  const int top_bit = std::bit_width(static_cast<std::uint64_t>(value | sub_bucket_mask_));
  return top_bit - unit_magnitude_ - (sub_bucket_half_count_magnitude_ + 1);
}

std::size_t Histogram::index_of(std::int64_t value) const {
  const int bucket = bucket_of(value);
  const std::int64_t sub_bucket = value >> (bucket + unit_magnitude_);
  // Bucket 0 uses all its sub-buckets; later ones only their upper half.
  return static_cast<std::size_t>((std::int64_t{bucket + 1} << sub_bucket_half_count_magnitude_) +
                                  (sub_bucket - sub_bucket_half_count_));
}

std::int64_t Histogram::value_at_index(std::size_t index) const {
  int bucket = static_cast<int>(index >> sub_bucket_half_count_magnitude_) - 1;
  std::int64_t sub_bucket =
      static_cast<std::int64_t>(index & static_cast<std::size_t>(sub_bucket_half_count_ - 1)) +
      sub_bucket_half_count_;
  if (bucket < 0) {  // the lower half of bucket 0
    sub_bucket -= sub_bucket_half_count_;
    bucket = 0;
  }
  return sub_bucket << (bucket + unit_magnitude_);
}

bool Histogram::record(std::int64_t value, std::int64_t count) {
  if (value < 0 || value > highest_ || count < 0) return false;
  counts_[index_of(value)] += count;
  total_count_ += count;
  min_value_ = std::min(min_value_, value);
  max_value_ = std::max(max_value_, value);
  return true;
}

void Histogram::record_clamped(std::int64_t value) {
  if (value > highest_) {
    value = highest_;
    ++saturated_;
  }
  record(std::max<std::int64_t>(value, 0));
}

bool Histogram::record_corrected(std::int64_t value, std::int64_t expected_interval) {
  if (!record(value)) return false;
  if (expected_interval <= 0) return true;
  for (std::int64_t missed = value - expected_interval; missed >= expected_interval;
       missed -= expected_interval) {
    record(missed);
  }
  return true;
}

bool Histogram::add(const Histogram& other) {
  if (other.lowest_ != lowest_ || other.highest_ != highest_ || other.figures_ != figures_) {
    return false;
  }
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  total_count_ += other.total_count_;
  saturated_ += other.saturated_;
  min_value_ = std::min(min_value_, other.min_value_);
  max_value_ = std::max(max_value_, other.max_value_);
  return true;
}

void Histogram::reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_count_ = 0;
  saturated_ = 0;
  min_value_ = std::numeric_limits<std::int64_t>::max();
  max_value_ = 0;
}

std::int64_t Histogram::min() const {
  return total_count_ == 0 ? 0 : lowest_equivalent(min_value_);
}

std::int64_t Histogram::max() const {
  return total_count_ == 0 ? 0 : highest_equivalent(max_value_);
}

double Histogram::mean() const {
  if (total_count_ == 0) return 0.0;
  double sum = 0.0;
  for_each_slot([&](std::int64_t from, std::int64_t, std::int64_t count) {
    sum += static_cast<double>(median_equivalent(from)) * static_cast<double>(count);
  });
  return sum / static_cast<double>(total_count_);
}

double Histogram::stddev() const {
  if (total_count_ == 0) return 0.0;
  const double m = mean();
  double sum = 0.0;
  for_each_slot([&](std::int64_t from, std::int64_t, std::int64_t count) {
    const double d = static_cast<double>(median_equivalent(from)) - m;
    sum += d * d * static_cast<double>(count);
  });
  return std::sqrt(sum / static_cast<double>(total_count_));
}

std::int64_t Histogram::value_at_percentile(double percentile) const {
  if (total_count_ == 0) return 0;
  const double p = std::clamp(percentile, 0.0, 100.0);
  // The rank of the sample at this percentile, rounded to nearest, at least the first.
  auto rank = static_cast<std::int64_t>(p / 100.0 * static_cast<double>(total_count_) + 0.5);
  rank = std::max<std::int64_t>(rank, 1);
  std::int64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const std::int64_t v = value_at_index(i);
      return p == 0.0 ? lowest_equivalent(v) : highest_equivalent(v);
    }
  }
  return max();
}

std::int64_t Histogram::equivalent_range(std::int64_t value) const {
  return std::int64_t{1} << (unit_magnitude_ + bucket_of(value));
}

std::int64_t Histogram::lowest_equivalent(std::int64_t value) const {
  const int shift = bucket_of(value) + unit_magnitude_;
  return (value >> shift) << shift;
}

std::int64_t Histogram::next_non_equivalent(std::int64_t value) const {
  return lowest_equivalent(value) + equivalent_range(value);
}

std::int64_t Histogram::highest_equivalent(std::int64_t value) const {
  return next_non_equivalent(value) - 1;
}

std::int64_t Histogram::median_equivalent(std::int64_t value) const {
  return lowest_equivalent(value) + equivalent_range(value) / 2;
}

bool Histogram::equivalent(std::int64_t a, std::int64_t b) const {
  return lowest_equivalent(a) == lowest_equivalent(b);
}

}  // namespace iolab
