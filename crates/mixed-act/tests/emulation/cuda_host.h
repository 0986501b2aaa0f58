// Just enough of CUDA's device environment for our .cu source to compile and run as host C++
// (tests/emulated_kernels.rs): one std::thread per CUDA thread of a block, blocks one after
// another over a 3-D grid (z: the model of a cohort), __syncthreads as a barrier, __shared__ as
// a function-level static (shared by the threads of the one running block). It checks indexing, launch geometry and the grad-w
// reduction against the Rust CPU kernels; it says nothing about GPU precision or speed.
#pragma once
#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline std::barrier<>* current_block_barrier = nullptr;
inline void __syncthreads() { current_block_barrier->arrive_and_wait(); }

inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, sizeof f);
    return f;
}
inline double __longlong_as_double(long long i) {
    double d;
    std::memcpy(&d, &i, sizeof d);
    return d;
}
// Math: the float overloads as CUDA has them (erfcf, log1pf, expf, ... come from <math.h>).
using std::fabs;
using std::fmax;
using std::fmin;
using std::isnan;

// Runs `body` as the kernel <<<grid, block>>>: every block of the 3-D grid in turn (x fastest,
// then y, then z), each with its block.x * block.y * block.z threads.
template <typename Body>
void launch(dim3 grid, dim3 block, Body body) {
    gridDim = grid;
    blockDim = block;
    for (unsigned int bz = 0; bz < grid.z; ++bz)
        for (unsigned int by = 0; by < grid.y; ++by)
            for (unsigned int bx = 0; bx < grid.x; ++bx) {
                std::barrier<> barrier(block.x * block.y * block.z);
                current_block_barrier = &barrier;
                std::vector<std::thread> threads;
                for (unsigned int tz = 0; tz < block.z; ++tz)
                    for (unsigned int ty = 0; ty < block.y; ++ty)
                        for (unsigned int tx = 0; tx < block.x; ++tx)
                            threads.emplace_back([=] {
                                blockIdx = dim3{bx, by, bz};
                                threadIdx = dim3{tx, ty, tz};
                                body();
                            });
                for (auto& t : threads) t.join();
            }
}
