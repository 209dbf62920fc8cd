// Host side of the CUDA training loop that needs the CPU engine's headers (Eigen), compiled by the C++
// compiler, not nvcc.
#include "shuffle.hpp"

#include <type_traits>

#include "sensinet/train.hpp"

namespace sensinet::cuda {

static_assert(std::is_same_v<sensinet::Index, std::ptrdiff_t>, "sensinet::Index must be std::ptrdiff_t");

void shuffle_like_cpu(std::vector<std::ptrdiff_t>& idx, std::mt19937_64& rng) { sensinet::shuffle_indices(idx, rng); }

}  // namespace sensinet::cuda
