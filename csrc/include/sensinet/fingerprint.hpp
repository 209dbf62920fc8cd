// A fast, position-sensitive, keyed 64-bit fingerprint of a byte range: tells whether an array that a prepared
// data set or a device mirror was made from has changed since (in-place writes, row swaps, one flipped bit).
// Eight independent multiply-xor lanes keep it near memory bandwidth. Each lane's step is invertible, so with
// public starting values a change to one word could be cancelled by a crafted change to the lane's next word;
// the lanes therefore start from a secret per-process ``key`` (and the key enters the final fold), and a
// change crafted without knowing it keeps the fingerprint with probability 2^-64. Not a cryptographic MAC.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sensinet {

// splitmix64: spreads the key into unrelated lane seeds
inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline std::uint64_t fingerprint(const void* data, std::size_t bytes, std::uint64_t key) {
  constexpr std::uint64_t kMul = 0x9E3779B97F4A7C15ull;  // odd: multiplication is a bijection mod 2^64
  constexpr int kLanes = 8;
  std::uint64_t lane[kLanes];
  for (int i = 0; i < kLanes; ++i) lane[i] = mix64(key + std::uint64_t(i) * 0x13198A2E03707344ull);
  const unsigned char* p = static_cast<const unsigned char*>(data);
  const std::size_t words = bytes / 8;
  std::size_t w = 0;
  for (; w + kLanes <= words; w += kLanes) {
    for (int i = 0; i < kLanes; ++i) {
      std::uint64_t v;
      std::memcpy(&v, p + 8 * (w + i), 8);
      lane[i] = (lane[i] ^ v) * kMul;
      lane[i] ^= lane[i] >> 29;
    }
  }
  std::uint64_t h = mix64(key ^ std::uint64_t(bytes));
  for (; w < words; ++w) {
    std::uint64_t v;
    std::memcpy(&v, p + 8 * w, 8);
    h = ((h ^ v) * kMul) ^ (h >> 31);
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, p + 8 * words, bytes - 8 * words);
  h = ((h ^ tail) * kMul) ^ (h >> 31);
  for (int i = 0; i < kLanes; ++i) h = ((h ^ lane[i]) * kMul) ^ (h >> 29);  // lanes fold in order
  return h;
}

}  // namespace sensinet
