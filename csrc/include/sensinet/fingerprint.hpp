// A fast, position-sensitive 64-bit fingerprint of a byte range: tells whether an array that a prepared
// data set or a device mirror was made from has changed since (in-place writes, row swaps, one flipped
// bit). Not cryptographic; eight independent multiply-xor lanes keep it near memory bandwidth.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sensinet {

inline std::uint64_t fingerprint(const void* data, std::size_t bytes) {
  constexpr std::uint64_t kMul = 0x9E3779B97F4A7C15ull;  // odd: multiplication is a bijection mod 2^64
  constexpr int kLanes = 8;
  std::uint64_t lane[kLanes];
  for (int i = 0; i < kLanes; ++i) lane[i] = 0x243F6A8885A308D3ull + std::uint64_t(i) * 0x13198A2E03707344ull;
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
  std::uint64_t h = bytes;
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
