"""The hardware model as data: NeuronCore generations, chips and instances.

Every number cites docs/reference/neuron-hardware.md (section in brackets); that file names
the upstream Neuron documentation page for each. Where NeuronCore-v1 facts are unpublished the
value is an explicit ASSUMPTION with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class NeuronCoreSpec:
    name: str
    generation: int
    engines: tuple
    # engine clocks, GHz [0: "Engine data-path width and clock" table, 1.1]
    tensor_ghz: float
    vector_ghz: float
    scalar_ghz: float
    gpsimd_ghz: float
    pe_rows: int                  # TensorE systolic array rows = contraction tile K [1.1 TensorE]
    pe_cols: int                  # columns = stationary free size M limit [1.1]
    moving_max: int               # moving free size N limit (one PSUM bank of 512 fp32) [1.1]
    mm_init_latency: int          # MM_INIT_LATENCY cycles [1.1 cost model]
    fp32_matmul_factor: int       # fp32 inputs cost 4x [1.1; NKI-ISA nc_matmul]
    has_fp32_matmul: bool
    matmul_dtypes: tuple          # TensorE input dtypes [1.1; 1.3]
    vector_lanes: int             # [1.1 VectorE]
    scalar_lanes: int             # [1.1 ScalarE]
    min_ii: int                   # MIN_II ~64 cycles [1.1 instruction cost table]
    free_tile: int                # free elements per partition in one VectorE/ScalarE instruction (see NEURONCORE_V2)
    gpsimd_cores: int             # [1.1 GpSimdE]
    gpsimd_lanes: int             # fp32 lanes of one GpSimd core: 512-bit SIMD = 16 x FP32 [1.1 GpSimdE]
    gpsimd_start_cycles: int      # GPSIMD_START ~150 [1.1 table: iota/affine_select]
    gpsimd_tcm_bytes: int         # 64 KB TCM per GpSimd core [1.1 GpSimdE]
    sbuf_bytes: int               # [0; 1.1 SBUF]
    psum_bytes: int               # [0; 1.1 PSUM]
    partitions: int               # SBUF/PSUM partitions [1.1]
    dma_engines: int              # DMA engines per core [1.1 Data movement]
    dma_gbps_per_engine: float    # GB/s per DMA engine [1.1 Data movement, NKI-DMA 27.2]
    dma_fixed_ns: float           # per-transfer latency ~1300 ns [1.1 Overheads, NKI-DMABW]
    device_mem_bytes: int         # device memory owned by one core [0]
    device_mem_gbps: float        # per-core share of device-memory bandwidth [0; 1.1 HBM]
    bf16_tflops: float            # TensorE peak [0]
    # docs/cost-model.md gives each of these its source and reason
    dep_overhead_cycles: int = 100    # static overhead of a dependent VectorE/ScalarE instruction [1.1 VectorE/ScalarE]
    dma_desc_half_bytes: float = 512.0  # ASSUMPTION: per-descriptor payload at half the DMA peak (cost-model.md)
    host_gbps: float = 31.5           # ASSUMPTION: host link PCIe Gen4 x16 per direction (cost-model.md)

    def clocks(self):
        """(TensorE, VectorE, ScalarE, GpSimdE, DMA) GHz; the DMA slot is unused (costs in ns)."""
        return [self.tensor_ghz, self.vector_ghz, self.scalar_ghz, self.gpsimd_ghz, 1.0]


GiB = 1024 ** 3
MiB = 1024 ** 2

NEURONCORE_V2 = NeuronCoreSpec(
    name="NeuronCore-v2", generation=2,
    engines=("TensorE", "VectorE", "ScalarE", "GpSimdE", "DMA"),
    tensor_ghz=2.8, vector_ghz=1.12, scalar_ghz=1.4, gpsimd_ghz=1.4,            # [1.1 clock table]
    pe_rows=128, pe_cols=128, moving_max=512,                                   # [1.1 tile limits]
    mm_init_latency=64, fp32_matmul_factor=4, has_fp32_matmul=True,            # [1.1 cost model]
    matmul_dtypes=("fp32", "tf32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2"),   # [1.1 TensorE: BF16, FP16, TF32, cFP8, FP32]
    vector_lanes=128, scalar_lanes=128, min_ii=64,                              # [1.1 VectorE/ScalarE; table]
    # ASSUMPTION: VectorE accepts up to 64K free elements (SBUF) [1.1 VectorE]; we model a compiler that tiles
    # the free axis to one PSUM bank's 512 fp32 per partition [1.1 PSUM], so a long row costs several instructions.
    free_tile=512,
    gpsimd_cores=8, gpsimd_lanes=16, gpsimd_start_cycles=150, gpsimd_tcm_bytes=64 * 1024,  # [1.1 GpSimdE]
    sbuf_bytes=24 * MiB, psum_bytes=2 * MiB, partitions=128,                    # [0; 1.1 SBUF/PSUM]
    # 16 engines at the sustained 17 B/ns each (272 GB/s per core), not the 27.2 GB/s peak [1.1 Data movement, NKI-DMABW]
    dma_engines=16, dma_gbps_per_engine=17.0, dma_fixed_ns=1300.0,
    device_mem_bytes=16 * GiB, device_mem_gbps=410.0,                           # [1.1 HBM: 820 GB/s per chip / 2 cores, derived]
    bf16_tflops=92.0,                                                           # [0; 4.1: use the NKI per-core figure]
)

# NeuronCore-v1 engines and the instructions the compiler emits for them [1.3; NC1]: TensorE (MatMul, Conv2d,
# Transpose: FP16/BF16 inputs only, so every matmul is cast, --fast-math never gives fp32 matmuls), VectorE (the
# elementwise/reduce/norm/pool ops and VecSelect, a predicated copy standing in for GpSimd's Select), ScalarE
# (Activation), DMA (DmaCopy, DmaLoad, IoIn/IoOut and DmaGather: embedding/index_select rows fetched by DMA with
# indirect addressing, since neuron-cc places aten::embedding on the device [published Inf1 op list] and v1 has no
# GpSimd). ASSUMPTION: v1's DMA supports indirect (descriptor-per-row) addressing as v2's does; the v1 docs don't
# say. Fills are DMA broadcasts of a compile-time constant. compile_graph refuses any instruction on an engine not
# in `engines` below, naming the op.
# NeuronCore-v1: published are 16 FP16/BF16 TFLOPS per core, ScalarE 512 and VectorE 256 FP ops/cycle,
# 8 GiB DRAM at 50 GiB/s per chip shared by 4 cores (2 GB slice each) [0; 1.3]. Unpublished [1.3 "Not confirmed"]:
# clock, array size, SBUF/PSUM size, DMA engines.
NEURONCORE_V1 = NeuronCoreSpec(
    name="NeuronCore-v1", generation=1,
    engines=("TensorE", "VectorE", "ScalarE", "DMA"),                          # no GpSimd [0; 1.3]
    # ASSUMPTION: a 128x128 array like v2; 16 TFLOPS = 128*128*2*f  =>  f = 0.49 GHz (the derivation in [1.3]).
    tensor_ghz=0.49,
    # ASSUMPTION: 128 lanes; VectorE 256 FP ops/cycle and ScalarE 512 [1.3] don't give clocks; we keep the v2
    # lane count and scale the v2 clocks by the blog's "v2 is 10x (Vector) / 3x (Scalar) faster than v1" [seed].
    vector_ghz=1.12 / 10 * 1.0, scalar_ghz=1.4 / 3, gpsimd_ghz=0.0,
    pe_rows=128, pe_cols=128, moving_max=512,                                   # ASSUMPTION: same tile limits as v2
    mm_init_latency=64, fp32_matmul_factor=4, has_fp32_matmul=False,           # no FP32 matmul on Inf1 [1.3; api 1.9 #765]
    matmul_dtypes=("bf16", "fp16"),                                             # [1.3 TensorE FP16/BF16/INT8 inputs]
    vector_lanes=128, scalar_lanes=128, min_ii=64, free_tile=512,              # ASSUMPTION: as v2
    gpsimd_cores=0, gpsimd_lanes=0, gpsimd_start_cycles=0, gpsimd_tcm_bytes=0,
    # ASSUMPTION: SBUF/PSUM sizes unpublished; taken as v2's (they bound tiling only, not results).
    sbuf_bytes=24 * MiB, psum_bytes=2 * MiB, partitions=128,
    # ASSUMPTION: DMA engine count unpublished. A core running alone may draw the chip's whole 50 GiB/s peak [0; 1.3]
    # (published per chip only; a quarter share cannot be what one core gets: BERT-large's 578 MiB of bf16 weights,
    # far beyond any on-chip SRAM, would take 45 ms per call against the seed's measured 28.2 ms), and its DMA
    # sustains the fraction of peak NeuronCore-v2's does: 17 B/ns of 27.2 GB/s = 0.625 [1.1 Data movement,
    # NKI-DMABW vs NKI-DMA]: 33.6 GB/s (docs/cost-model.md "NeuronCore-v1").
    dma_engines=4, dma_gbps_per_engine=50 * 1.073741824 * (17.0 / 27.2) / 4, dma_fixed_ns=1300.0,
    device_mem_bytes=2 * 1000 ** 3, device_mem_gbps=50 * 1.073741824,           # 2 GB slice per core [1.3, #624]
    bf16_tflops=16.0,                                                           # [0; 1.3]
    host_gbps=15.75,                                                            # ASSUMPTION: PCIe Gen3 x16 (cost-model.md)
)

CORES: Dict[int, NeuronCoreSpec] = {1: NEURONCORE_V1, 2: NEURONCORE_V2}


@dataclass(frozen=True)
class CustomOpCosts:
    """GpSimd cost of user C++ operators (neuron_emu/custom_op), built into each library as -D flags.
    ASSUMPTION throughout: AWS publishes no per-access figures. Calibrated so that the documented ReLU
    progression element accessor -> TCM -> multicore (8.1 -> 220.7 -> 269.9 iter/s [api 4.7]) keeps its order
    and ratios: a per-launch cost shared by all three, accessor elements ~130x the cost of TCM-staged ones."""
    launch_cycles: int = 40000           # starting a user kernel (code + argument load): ~29 us at 1.4 GHz
    hbm_access_cycles: int = 200         # one accessor<> element is an HBM round trip (~140 ns)
    tcm_setup_cycles: int = 64           # one tensor_to_tcm / tcm_to_tensor transfer (a DMA descriptor)
    tcm_bytes_per_cycle: float = 4.0     # one fp32 per cycle into/out of TCM
    compute_cycles_per_elem: float = 1.0  # the core's scalar loop over data staged in TCM
    tcm_pool_bytes: int = 16 * 1024      # tcm_malloc pool, shared with stream accessors [api 4.4]


CUSTOM_OP_COSTS = CustomOpCosts()


@dataclass(frozen=True)
class Chip:
    name: str
    core: NeuronCoreSpec
    cores: int                 # [0 "Cores per chip"]
    memory_bytes: int          # [0 "Device memory"]
    memory_gbps: float


INFERENTIA1 = Chip("Inferentia", NEURONCORE_V1, 4, 8 * GiB, 50.0 * 1.073741824)   # 8 GiB DRAM, 50 GiB/s [0; 1.3]
INFERENTIA2 = Chip("Inferentia2", NEURONCORE_V2, 2, 32 * GiB, 820.0)               # 32 GiB HBM, 820 GB/s [0; 1.1]
TRAINIUM1 = Chip("Trainium", NEURONCORE_V2, 2, 32 * GiB, 820.0)                    # same core and memory [1.1]


@dataclass(frozen=True)
class Instance:
    name: str
    chip: Chip
    chips: int
    vcpus: int
    host_mem_gib: int
    usd_per_hour: float        # on-demand [2 Instance table, price source column]

    @property
    def neuron_cores(self) -> int:
        return self.chips * self.chip.cores


# [2 Instance table]: chips, vCPUs, host memory, on-demand USD/hour.
INSTANCES: Dict[str, Instance] = {i.name: i for i in [
    Instance("inf1.xlarge", INFERENTIA1, 1, 4, 8, 0.228),
    Instance("inf1.2xlarge", INFERENTIA1, 1, 8, 16, 0.362),
    Instance("inf1.6xlarge", INFERENTIA1, 4, 24, 48, 1.18),
    Instance("inf1.24xlarge", INFERENTIA1, 16, 96, 192, 4.721),
    Instance("inf2.xlarge", INFERENTIA2, 1, 4, 16, 0.758),
    Instance("inf2.8xlarge", INFERENTIA2, 1, 32, 128, 1.97),
    Instance("inf2.24xlarge", INFERENTIA2, 6, 96, 384, 6.49),
    Instance("inf2.48xlarge", INFERENTIA2, 12, 192, 768, 12.981),
    Instance("trn1.2xlarge", TRAINIUM1, 1, 8, 32, 1.34),
    Instance("trn1.32xlarge", TRAINIUM1, 16, 128, 512, 21.50),
]}

# neuronx-cc --target -> chip [api 2.10]
TARGETS = {"inf2": INFERENTIA2, "trn1": TRAINIUM1, "trn1n": TRAINIUM1}


def core_spec(generation: int = 2):
    """The extension's CoreSpec (cost-formula parameters) for a NeuronCore generation."""
    from neuron_emu import _C

    c = CORES[generation]
    s = _C.CoreSpec()
    s.generation = c.generation
    s.clock_ghz = c.clocks()
    s.partitions = c.pe_rows
    s.pe_cols = c.pe_cols
    s.moving_max = c.moving_max
    s.mm_init_latency = c.mm_init_latency
    s.fp32_matmul_factor = c.fp32_matmul_factor
    s.min_ii = c.min_ii
    s.free_tile = c.free_tile
    s.gpsimd_lanes = c.gpsimd_lanes
    s.gpsimd_start = c.gpsimd_start_cycles
    s.gpsimd_cores = c.gpsimd_cores
    s.dma_engines = c.dma_engines
    s.dma_bytes_per_ns_per_engine = c.dma_gbps_per_engine
    s.dma_fixed_ns = c.dma_fixed_ns
    s.hbm_bytes_per_ns = c.device_mem_gbps
    s.has_fp32_matmul = c.has_fp32_matmul
    s.dep_overhead_cycles = c.dep_overhead_cycles
    s.dma_desc_half_bytes = c.dma_desc_half_bytes
    s.sbuf_bytes = float(c.sbuf_bytes)
    s.host_bytes_per_ns = c.host_gbps
    return s
