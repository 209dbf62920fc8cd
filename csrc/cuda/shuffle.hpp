// The epoch permutation of the CUDA training loop is the CPU engine's: shuffle.cpp calls
// sensinet::shuffle_indices (mt19937_64 + bounded_draw Fisher-Yates from train.hpp) itself, so the same
// seed visits the rows in the same order on both engines, step for step.
#pragma once
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace sensinet::cuda {

void shuffle_like_cpu(std::vector<std::ptrdiff_t>& idx, std::mt19937_64& rng);

}  // namespace sensinet::cuda
