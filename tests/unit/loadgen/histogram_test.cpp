// The latency histogram against HdrHistogram's published test vectors (the reference C and Java
// implementations' tests load the same data): 10,000 samples of 1000 and one of 100,000,000 in
// a histogram of 1..3,600,000,000 with 3 significant figures, raw and corrected for coordinated
// omission with an expected interval of 10,000. Values are compared within the histogram's
// precision (0.1%) or by equivalence, as the reference tests do.

#include "histogram.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>

namespace iolab {
namespace {

constexpr std::int64_t kHighest = 3600LL * 1000 * 1000;
constexpr std::int64_t kInterval = 10000;
constexpr std::int64_t kScale = 512;

::testing::AssertionResult Near(std::int64_t actual, double expected, double variation = 0.001) {
  if (std::fabs(static_cast<double>(actual) - expected) <= expected * variation) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << actual << " is not within " << variation * 100 << "% of " << expected;
}

class HistogramVectors : public ::testing::Test {
 protected:
  HistogramVectors()
      : raw_(1, kHighest, 3),
        corrected_(1, kHighest, 3),
        scaled_raw_(1000, kHighest * kScale, 3),
        scaled_corrected_(1000, kHighest * kScale, 3) {
    for (int i = 0; i < 10000; ++i) {
      raw_.record(1000);
      corrected_.record_corrected(1000, kInterval);
      scaled_raw_.record(1000 * kScale);
      scaled_corrected_.record_corrected(1000 * kScale, kInterval * kScale);
    }
    raw_.record(100000000);
    corrected_.record_corrected(100000000, kInterval);
    scaled_raw_.record(100000000 * kScale);
    scaled_corrected_.record_corrected(100000000 * kScale, kInterval * kScale);
  }
  Histogram raw_;
  Histogram corrected_;
  Histogram scaled_raw_;
  Histogram scaled_corrected_;
};

TEST_F(HistogramVectors, CountsArrayHasReferenceLength) {
  EXPECT_EQ(Histogram(1, 3600000000LL, 3).counts_length(), 23552u);
}

TEST_F(HistogramVectors, TotalCounts) {
  EXPECT_EQ(raw_.total_count(), 10001);
  EXPECT_EQ(corrected_.total_count(), 20000);
}

TEST_F(HistogramVectors, MinAndMax) {
  EXPECT_EQ(raw_.min(), 1000);
  EXPECT_EQ(corrected_.min(), 1000);
  EXPECT_TRUE(raw_.equivalent(raw_.max(), 100000000));
  EXPECT_TRUE(corrected_.equivalent(corrected_.max(), 100000000));
}

TEST_F(HistogramVectors, RawPercentiles) {
  EXPECT_TRUE(Near(raw_.value_at_percentile(30.0), 1000.0));
  EXPECT_TRUE(Near(raw_.value_at_percentile(99.0), 1000.0));
  EXPECT_TRUE(Near(raw_.value_at_percentile(99.99), 1000.0));
  EXPECT_TRUE(Near(raw_.value_at_percentile(99.999), 100000000.0));
  EXPECT_TRUE(Near(raw_.value_at_percentile(100.0), 100000000.0));
}

TEST_F(HistogramVectors, CorrectedPercentiles) {
  EXPECT_TRUE(Near(corrected_.value_at_percentile(30.0), 1000.0));
  EXPECT_TRUE(Near(corrected_.value_at_percentile(50.0), 1000.0));
  EXPECT_TRUE(Near(corrected_.value_at_percentile(75.0), 50000000.0));
  EXPECT_TRUE(Near(corrected_.value_at_percentile(90.0), 80000000.0));
  EXPECT_TRUE(Near(corrected_.value_at_percentile(99.0), 98000000.0));
  EXPECT_TRUE(Near(corrected_.value_at_percentile(99.999), 100000000.0));
  EXPECT_TRUE(Near(corrected_.value_at_percentile(100.0), 100000000.0));
}

TEST_F(HistogramVectors, RecordedSlots) {
  std::vector<std::int64_t> counts;
  raw_.for_each_slot([&](std::int64_t, std::int64_t, std::int64_t c) { counts.push_back(c); });
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0], 10000);
  EXPECT_EQ(counts[1], 1);

  std::int64_t total = 0;
  std::int64_t first = -1;
  corrected_.for_each_slot([&](std::int64_t from, std::int64_t to, std::int64_t c) {
    EXPECT_LT(from, to);
    EXPECT_GT(c, 0);
    if (first < 0) first = c;
    total += c;
  });
  EXPECT_EQ(first, 10000);
  EXPECT_EQ(total, 20000);
}

TEST_F(HistogramVectors, MeanAndStandardDeviation) {
  const double raw_mean = (10000.0 * 1000 + 100000000.0) / 10001;
  const double raw_sd = std::sqrt(
      (10000.0 * std::pow(1000 - raw_mean, 2) + std::pow(100000000.0 - raw_mean, 2)) / 10001);
  EXPECT_NEAR(raw_.mean(), raw_mean, raw_mean * 0.001);
  EXPECT_NEAR(raw_.stddev(), raw_sd, raw_sd * 0.001);

  // The corrected data: 10,000 x 1000 plus 10,000, 20,000, ..., 100,000,000.
  double sum = 10000.0 * 1000;
  for (int k = 1; k <= 10000; ++k) sum += k * 10000.0;
  const double mean = sum / 20000;
  double squares = 10000.0 * std::pow(1000 - mean, 2);
  for (int k = 1; k <= 10000; ++k) squares += std::pow(k * 10000.0 - mean, 2);
  EXPECT_NEAR(corrected_.mean(), mean, mean * 0.001);
  EXPECT_NEAR(corrected_.stddev(), std::sqrt(squares / 20000), std::sqrt(squares / 20000) * 0.001);
}

TEST_F(HistogramVectors, ScaledHistogramsAgree) {
  EXPECT_NEAR(corrected_.mean() * kScale, scaled_corrected_.mean(),
              scaled_corrected_.mean() * 0.000001);
  EXPECT_EQ(corrected_.total_count(), scaled_corrected_.total_count());
  const std::int64_t expected_99 = corrected_.value_at_percentile(99.0) * kScale;
  EXPECT_EQ(corrected_.lowest_equivalent(expected_99),
            scaled_corrected_.lowest_equivalent(scaled_corrected_.value_at_percentile(99.0)));
  EXPECT_TRUE(Near(scaled_raw_.value_at_percentile(99.999), 100000000.0 * kScale));
}

TEST_F(HistogramVectors, ResetEmptiesEverything) {
  ASSERT_NE(raw_.value_at_percentile(99.0), 0);
  raw_.reset();
  corrected_.reset();
  EXPECT_EQ(raw_.total_count(), 0);
  EXPECT_EQ(corrected_.total_count(), 0);
  EXPECT_EQ(raw_.value_at_percentile(99.0), 0);
  EXPECT_EQ(corrected_.value_at_percentile(99.0), 0);
}

TEST(Histogram, ValuesOutsideTheRangeAreRefused) {
  Histogram h(1, 1000, 4);
  EXPECT_TRUE(h.record(1000));
  EXPECT_FALSE(h.record(1001));
  EXPECT_FALSE(h.record(-1));
  EXPECT_EQ(h.total_count(), 1);
}

TEST(Histogram, LargeLowestValue) {
  Histogram h(20000000, 100000000, 5);
  h.record(100000000);
  h.record(20000000);
  h.record(30000000);
  EXPECT_TRUE(h.equivalent(20000000, h.value_at_percentile(50.0)));
  EXPECT_TRUE(h.equivalent(30000000, h.value_at_percentile(83.33)));
  EXPECT_TRUE(h.equivalent(100000000, h.value_at_percentile(83.34)));
  EXPECT_TRUE(h.equivalent(100000000, h.value_at_percentile(99.0)));
}

TEST(Histogram, InvalidConfigurationsThrow) {
  EXPECT_THROW(Histogram(0, 64 * 1024, 2), std::invalid_argument);
  EXPECT_THROW(Histogram(80, 110, 5), std::invalid_argument);
  EXPECT_THROW(Histogram(1, 36000000, 0), std::invalid_argument);
  EXPECT_THROW(Histogram(1, 36000000, 6), std::invalid_argument);
}

// The design's promise: every slot is narrower than value / 10^figures, and slots tile the
// range without gaps.
TEST(Histogram, SlotsKeepThePromisedPrecision) {
  const Histogram h(1, kHighest, 3);
  for (std::int64_t v = 1; v < kHighest; v = v + 1 + v / 7) {
    const std::int64_t lo = h.lowest_equivalent(v);
    const std::int64_t next = h.next_non_equivalent(v);
    ASSERT_LE(lo, v);
    ASSERT_LT(v, next);
    ASSERT_EQ(h.lowest_equivalent(next), next) << v;
    ASSERT_EQ(h.lowest_equivalent(next - 1), lo) << v;
    if (v >= 2048) {
      ASSERT_LE(static_cast<double>(next - lo), static_cast<double>(v) / 1000.0) << v;
    } else {
      ASSERT_EQ(next - lo, 1) << v;
    }
  }
}

TEST(Histogram, MergingHalvesEqualsTheWhole) {
  Histogram whole(1, kHighest, 3), a(1, kHighest, 3), b(1, kHighest, 3);
  for (std::int64_t i = 1; i <= 20000; ++i) {
    const std::int64_t v = i * i % 9999991;
    whole.record(v);
    (i % 2 ? a : b).record(v);
  }
  ASSERT_TRUE(a.add(b));
  EXPECT_EQ(a.total_count(), whole.total_count());
  for (double p : {0.0, 10.0, 50.0, 90.0, 99.0, 99.9, 100.0}) {
    EXPECT_EQ(a.value_at_percentile(p), whole.value_at_percentile(p)) << p;
  }
  EXPECT_EQ(a.min(), whole.min());
  EXPECT_EQ(a.max(), whole.max());
  EXPECT_FALSE(a.add(Histogram(1, 1000, 3)));
}

TEST(Histogram, ClampedValuesSaturate) {
  Histogram h(1, 1'000'000, 3);
  h.record_clamped(5'000'000);
  h.record_clamped(-3);
  EXPECT_EQ(h.total_count(), 2);
  EXPECT_EQ(h.saturated_count(), 1);
  EXPECT_TRUE(h.equivalent(h.max(), 1'000'000));
  EXPECT_EQ(h.min(), 0);
}

}  // namespace
}  // namespace iolab
