#include "fhe/params.h"

#include <string>

#include "fhe/modarith.h"

namespace fhe {

const Params& Params::P48() {
  static const Params p{kP48Id, "P48", 2048, (uint64_t{1} << 48) - (uint64_t{1} << 14) + 1,
                        21,     48,    6};
  return p;
}

const Params& Params::by_id(uint32_t id) {
  if (id == kP48Id) return P48();
  throw FheError("unknown parameter set id " + std::to_string(id) + " (known: 1 = P48)");
}

bool is_prime_u64(uint64_t n) {
  if (n < 2) return false;
  for (uint64_t p :
       {2ull, 3ull, 5ull, 7ull, 11ull, 13ull, 17ull, 19ull, 23ull, 29ull, 31ull, 37ull}) {
    if (n % p == 0) return n == p;
  }
  uint64_t d = n - 1;
  int s = 0;
  while ((d & 1) == 0) {
    d >>= 1;
    ++s;
  }
  for (uint64_t a :
       {2ull, 3ull, 5ull, 7ull, 11ull, 13ull, 17ull, 19ull, 23ull, 29ull, 31ull, 37ull}) {
    uint64_t x = pow_mod(a, d, n);
    if (x == 1 || x == n - 1) continue;
    bool composite = true;
    for (int r = 1; r < s; ++r) {
      x = mul_mod(x, x, n);
      if (x == n - 1) {
        composite = false;
        break;
      }
    }
    if (composite) return false;
  }
  return true;
}

}  // namespace fhe
