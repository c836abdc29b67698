// Conformance cases (conformance.hpp): The command line every server shares: flag errors, the ready
// line, a clean shutdown.

#include "conformance.hpp"

namespace iolab::test {
namespace {

// ================================ command line =============================================

TEST_P(Conformance, UnknownFlagExits2) {
  EXPECT_FLAG_REJECTED("--bogus", "--port", "0", "--bogus");
}

TEST_P(Conformance, BadFlagValueExits2) {
  EXPECT_FLAG_REJECTED("--port", "--port", "abc");
}

TEST_P(Conformance, BadSendfileValueExits2) {
  EXPECT_FLAG_REJECTED("--sendfile", "--port", "0", "--sendfile", "maybe");
}

TEST_P(Conformance, ReadyLineAndCleanShutdown) {
  START_SERVER();  // checks the ready line
  Conn c = connect();
  auto r = roundtrip(c, get("/ping"));
  ASSERT_TRUE(r);
  c.close();
  Json final_stats = stop_and_check();
  ASSERT_TRUE(final_stats.is_object());
  EXPECT_GE(number(final_stats, "requests"), 1);
}

}  // namespace
}  // namespace iolab::test
