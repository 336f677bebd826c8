"""Memory of a student's training step per GPU, planned before the run and measured on a real step.

`estimate_training_memory` adds up, in bytes, what one training process holds at its peak:

- weights (fp32), their gradients (fp32; a second copy in DDP's buckets over several GPUs) and
  AdamW's two moments (fp32); under bf16 autocast also the bf16 copies of the matrices that
  autocast makes and autograd keeps for backward;
- activations: what autograd saves in the forward pass for the backward pass, per micro-batch
  (batch_size / gpus / grad_accumulation). A pre-norm transformer block (`block_bytes`) saves its
  input x and the residual x + attention (fp32 even under autocast: the residual add promotes),
  and, at the activation width (4 bytes, or 2 under bf16), the two LayerNorm outputs as the
  linears take them, q/k/v, the attention output, the MLP's hidden layer before and after the
  activation (QuickGELU keeps one more). Memory-efficient attention (CUDA's flash and
  efficient kernels, the CPU's flash kernel) keeps no tokens x tokens matrix, only its log-sum-exp;
- with grad checkpointing a block keeps only its input, and backward recomputes one block at a
  time: its activations and the gradients flowing through it (`block_bytes` each) come on top;
- without it, backward's gradient buffers of one block come on top of everything the forward kept;
- the batch itself (uint8 frames, tokens), the temporal head, AFA and the losses;
- teachers: their cached features of the batch (`teacher_mode: cached`), or their fp32 weights and
  a forward without gradients over the batch (`online`);
- with grad_accumulation > 1 the whole per-GPU batch is first encoded without gradients, keeping
  only its final features: that pass's largest layer (`no_grad_block_bytes`) is a transient.

The peak is the larger of two moments: the start of backward (weights, optimizer state,
activations and backward's buffers) and the optimizer step (weights, gradients, optimizer state
and AdamW's temporaries: one copy of the weights in the multi-tensor kernel CUDA uses, two copies
of the largest tensor in the per-tensor one of the CPU).

`measure_training_peak` measures the same step on any device (torch's MemTracker); the tests hold
the estimate to ±25 % of it. `memory_problems(params)` is the pre-flight's verdict for a GPU, and
`tclib memory PARAMS` prints the table from a laptop.
"""

from __future__ import annotations

from .estimate import (
                       GiB,
                       MemoryEstimate,
                       TrainingSetup,
                       clip_shape,
                       estimate,
                       estimate_params_memory,
                       estimate_training_memory,
                       setup_from_params,
                       student_head_params,
)
from .measure import LiveBytes, measure_student_step, measure_training_peak
from .planning import gpu_memory, memory_problems, parse_bytes, report, usable_bytes, verdict

__all__ = ["GiB", "LiveBytes", "MemoryEstimate", "TrainingSetup", "clip_shape", "estimate", "estimate_params_memory",
           "estimate_training_memory", "gpu_memory", "measure_student_step", "measure_training_peak",
           "memory_problems", "parse_bytes", "report", "setup_from_params", "student_head_params", "usable_bytes",
           "verdict"]
