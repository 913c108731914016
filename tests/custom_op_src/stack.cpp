// Kernels that need more stack than the default 8 KB (tests/test_custom_op_stack.py).
#include <torch/torch.h>

// a 12 KB local array, every element written: fits -DSTACK_SIZE=20000, not the default
torch::Tensor big_local(const torch::Tensor& x) {
  volatile float buf[3072];
  for (int i = 0; i < 3072; i++) buf[i] = (float)i;
  torch::Tensor out = get_dst_tensor();
  auto a = x.accessor<float, 1>();
  auto o = out.accessor<float, 1>();
  for (int64_t i = 0; i < x.size(0); i++) o[i] = a[i] + buf[(i * 7) % 3072];
  return out;
}

// unbounded recursion: runs off the end of any stack
static int depth(volatile int n) {
  volatile char pad[256];
  pad[0] = (char)n;
  return n < 0 ? pad[0] : depth(n + 1) + pad[0];
}
torch::Tensor recurse(const torch::Tensor& x) {
  torch::Tensor out = get_dst_tensor();
  out.accessor<float, 1>()[0] = (float)depth(0);
  return out;
}

// a 1 MB frame of which only the far end is touched: it skips any guard page unless the compiler probes
torch::Tensor huge_frame(const torch::Tensor& x) {
  volatile char buf[1 << 20];
  buf[0] = 1;
  torch::Tensor out = get_dst_tensor();
  out.accessor<float, 1>()[0] = buf[0];
  return out;
}
