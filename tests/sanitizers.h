// Whether this test binary runs under a sanitizer, which makes it an order
// of magnitude slower: long tests scale their work down by it.
#ifndef RULLOC_TESTS_SANITIZERS_H_
#define RULLOC_TESTS_SANITIZERS_H_

namespace rulloc::test_support {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool kUnderSanitizer = true;
#else
inline constexpr bool kUnderSanitizer = false;
#endif

}  // namespace rulloc::test_support

#endif  // RULLOC_TESTS_SANITIZERS_H_
