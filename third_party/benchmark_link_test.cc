// Proves that Google Benchmark links and runs a registered benchmark (outside gtest, because
// benchmark's own main is what bench/ uses).

#include <benchmark/benchmark.h>

#include <cstdio>

namespace {

int iterations_run = 0;

void BM_Increment(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(++iterations_run);
  }
}
BENCHMARK(BM_Increment)->Iterations(10);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (iterations_run != 10) {
    std::fprintf(stderr, "expected 10 benchmark iterations, ran %d\n", iterations_run);
    return 1;
  }
  return 0;
}
