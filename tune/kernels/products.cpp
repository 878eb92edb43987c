// hybrid::small_linear(x, w): x @ w.T in float32 for a few rows of x, the speculative check's
// matrix products (tune/fastlm.py).
//
// x is [M, K] with M <= 16 (the check scores 9 positions), w is [N, K] as nn.Linear stores it.
// MKL's sgemm takes about twice as long for 9 rows as for one here, although every weight is
// read once either way: at 9 rows the core is busy multiplying and stops streaming the weights
// ahead. This kernel walks two weight rows at a time against all M rows of x (x stays in L1)
// and prefetches each weight row 4 KiB ahead, which keeps the stream going: measured on two
// cores for SmolLM2-135M's shapes, 19 ms against 37 ms for 9 rows, and 13 against 16 ms for
// one. Each output is one dot product summed in 16 lanes, so results differ from MKL's in the
// last bits only.
//
// Anything else (other dtypes or layouts, K not a multiple of 16, more than 16 rows) goes to
// at::linear. Built by tune.fastlm.build_kernels with -march=native for the machine it runs on.
//
// (An int8 version for the draft measured 3.2 against 5.4 ms alone, but slower inside the
// compiled draft than inductor's own int8 GEMM, which fuses the ops around it.)

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <array>
#include <cstdint>
#include <utility>

namespace {

typedef float vec16 __attribute__((vector_size(64)));
typedef float vec8 __attribute__((vector_size(32)));
typedef float vec4 __attribute__((vector_size(16)));

constexpr int64_t kLanes = 16;
constexpr int64_t kAhead = 1024;  // floats prefetched ahead along a weight row: 4 KiB, measured
constexpr int kRows = 2;          // weight rows per step: measured best (4 rows: 20-29 ms for 9 rows)
constexpr int kMaxM = 16;

inline vec16 load(const float* p) {
  vec16 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

inline float sum(vec16 v) {
  vec8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
           __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  vec4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
  return (b[0] + b[2]) + (b[1] + b[3]);
}

inline void prefetch(const float* p, int64_t ahead) {
  // An address computed as an integer: prefetching past the end of w is harmless, and no
  // pointer is formed outside the tensor.
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) + ahead * sizeof(float)), 0, 1);
}

// y[m, n + r] = x[m, :] . w[n + r, :] for r < R.
template <int M, int R>
void rows(const float* x, const float* w, float* y, int64_t K, int64_t N, int64_t n) {
  vec16 acc[R][M];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < M; ++m) acc[r][m] = vec16{};
  for (int64_t k = 0; k < K; k += kLanes) {
    vec16 weights[R];
    for (int r = 0; r < R; ++r) {
      weights[r] = load(w + (n + r) * K + k);
      prefetch(w + (n + r) * K + k, kAhead);
    }
    for (int m = 0; m < M; ++m) {
      vec16 input = load(x + m * K + k);
      for (int r = 0; r < R; ++r) acc[r][m] += input * weights[r];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < M; ++m) y[m * N + n + r] = sum(acc[r][m]);
}

template <int M>
void product(const float* x, const float* w, float* y, int64_t K, int64_t N) {
  const int64_t blocks = N / kRows;
  at::parallel_for(0, blocks, 16, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) rows<M, kRows>(x, w, y, K, N, block * kRows);
  });
  for (int64_t n = blocks * kRows; n < N; ++n) rows<M, 1>(x, w, y, K, N, n);
}

using Product = void (*)(const float*, const float*, float*, int64_t, int64_t);

template <int... Ms>
constexpr auto table(std::integer_sequence<int, Ms...>) {
  return std::array<Product, sizeof...(Ms)>{product<Ms + 1>...};
}

constexpr auto kProducts = table(std::make_integer_sequence<int, kMaxM>{});

at::Tensor small_linear(const at::Tensor& x, const at::Tensor& w) {
  const bool fits = x.dim() == 2 && w.dim() == 2 && x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat &&
                    x.device().is_cpu() && w.device().is_cpu() && w.is_contiguous() && x.size(1) == w.size(1) &&
                    x.size(1) % kLanes == 0 && x.size(0) >= 1 && x.size(0) <= kMaxM;
  if (!fits) return at::linear(x, w);
  const at::Tensor input = x.contiguous();
  at::Tensor out = at::empty({x.size(0), w.size(0)}, x.options());
  kProducts[x.size(0) - 1](input.data_ptr<float>(), w.data_ptr<float>(), out.data_ptr<float>(), x.size(1), w.size(0));
  return out;
}

at::Tensor small_linear_meta(const at::Tensor& x, const at::Tensor& w) {
  return at::empty_symint({x.sym_size(0), w.sym_size(0)}, x.options());
}

}  // namespace

TORCH_LIBRARY(hybrid, m) { m.def("small_linear(Tensor x, Tensor w) -> Tensor"); }
TORCH_LIBRARY_IMPL(hybrid, CPU, m) { m.impl("small_linear", small_linear); }
TORCH_LIBRARY_IMPL(hybrid, Meta, m) { m.impl("small_linear", small_linear_meta); }
