#!/usr/bin/env bash
# The C++ compiler (cc1plus and its driver) compiling a sizeable, template-
# heavy file under Rulloc; the program it builds must run correctly.
source "$(dirname "$0")/preload_lib.sh" "$1"
src="${WORK}/big.cc"
{
  echo '#include <map>'
  echo '#include <regex>'
  echo '#include <string>'
  echo '#include <vector>'
  echo '#include <unordered_map>'
  echo '#include <algorithm>'
  echo '#include <iostream>'
  echo 'template <int N> struct Fib { static constexpr long value = Fib<N-1>::value + Fib<N-2>::value; };'
  echo 'template <> struct Fib<0> { static constexpr long value = 0; };'
  echo 'template <> struct Fib<1> { static constexpr long value = 1; };'
  for i in $(seq 1 150); do
    echo "long f${i}(const std::vector<int>& v) {"
    echo "  std::map<int, std::string> m; std::unordered_map<std::string, int> u;"
    echo "  for (int x : v) { m[x % ${i}] += std::to_string(x); u[std::to_string(x * ${i})] = x; }"
    echo "  std::regex re(\"[0-9]+${i}\"); long n = 0;"
    echo "  for (auto& [k, s] : m) n += std::regex_search(s, re) ? k : 1;"
    echo "  return n + static_cast<long>(u.size()) + Fib<$((i % 40))>::value;"
    echo "}"
  done
  echo 'int main() { std::vector<int> v(300); for (int i = 0; i < 300; ++i) v[i] = i * 7; long t = 0;'
  for i in $(seq 1 150); do echo "  t += f${i}(v);"; done
  echo '  std::cout << t << std::endl; }'
} > "${src}"
g++ -O1 -std=c++17 -o "${WORK}/reference" "${src}"
with_rulloc g++ -O1 -std=c++17 -o "${WORK}/built" "${src}"
expected=$("${WORK}/reference")
actual=$("${WORK}/built")
[ "${actual}" = "${expected}" ] || fail "program built under Rulloc prints ${actual}, expected ${expected}"
cmp -s "${WORK}/reference" "${WORK}/built" || echo "note: binaries differ (build ids); outputs agree"
echo "g++: built and ran a 150-function program, output ${actual}"
expect_rulloc_served
