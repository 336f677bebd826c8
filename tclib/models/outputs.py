"""What the models give the training loop: a teacher's in-batch logits (RetrievalOutput), or a
student's embeddings (StudentOutput), from which its logits over the global batch are made."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from ..distributed import gather_with_grad


@dataclass
class RetrievalOutput:
    """In-batch (texts x videos) logits, and AFA's frame logits (B, F) when the model has AFA."""

    logits: torch.Tensor
    afa_logits: torch.Tensor | None = None


@dataclass
class StudentOutput:
    """A student's L2-normalized text and video embeddings (B, D) of this process's part of the batch,
    its logit scale (a scalar) and AFA's frame logits (B, F) when it has AFA: everything its losses
    read, so that they can be computed again from these alone (exact gradient accumulation)."""

    text: torch.Tensor
    video: torch.Tensor
    logit_scale: torch.Tensor
    afa_logits: torch.Tensor | None = None

    @property
    def logits(self) -> torch.Tensor:
        """In-batch logits (captions x videos), over the global batch when trained over several
        processes (every process's embeddings gathered, see tclib.distributed)."""
        return self.logit_scale * gather_with_grad(self.text) @ gather_with_grad(self.video).t()

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def leaves(self) -> StudentOutput:
        """These values as new leaves of the autograd graph, whose gradients a backward fills."""
        return replace(self, **{key: value.detach().requires_grad_() for key, value in self.tensors().items()})

    @staticmethod
    def cat(parts: list[StudentOutput]) -> StudentOutput:
        """The outputs of consecutive micro-batches as one output (the logit scale is the same in each)."""
        keys = [key for key in parts[0].tensors() if key != "logit_scale"]
        joined = {key: torch.cat([p.tensors()[key] for p in parts]) for key in keys}
        return StudentOutput(**joined, logit_scale=parts[0].logit_scale)
