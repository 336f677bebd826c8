"""The estimate: what one training process holds at its peak, from the model's open_clip config and
the run's shapes (see the package's docstring)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from types import SimpleNamespace

from ..errors import ParamsError

GiB = 2**30
GB = 10**9
CUDA_CONTEXT_BYTES = 1 * GiB  # what the CUDA context and the caching allocator's slack take besides tensors
ADAM_MOMENTS = 2  # exp_avg and exp_avg_sq, fp32
HEAD_COPIES = 10  # (B, F, D) tensors the temporal head's ends, AFA and pooling keep, besides its blocks
LOSS_COPIES = 8  # (B, B) logit matrices the objectives keep (scaled, softmaxes, teachers')
TEACHER_HEAD_LAYERS = 4  # the teachers' own seqTransf heads, as built from the params' temporal_layers
MASK_BYTES = 4  # float attention masks
GRADIENT_SHARE = 0.2  # gradients flowing through a recomputed block, as a share of its activations (measured)


@dataclass(frozen=True)
class Stack:
    """A transformer stack as the memory sees it: `tokens` per sequence, `sequences` per micro-batch."""

    tokens: int
    width: int
    layers: int
    heads: int
    mlp_width: int
    quick_gelu: bool = False

    def block_params(self) -> int:
        """in_proj 3w²+3w, out_proj w²+w, two LayerNorms 4w, MLP 2·w·m + m + w."""
        w, m = self.width, self.mlp_width
        return 4 * w * w + 4 * w + 4 * w + 2 * w * m + m + w

    def matrix_params(self) -> int:
        """The weights autocast copies to bf16 (the linears' matrices)."""
        return self.layers * (4 * self.width ** 2 + 2 * self.width * self.mlp_width)


def block_bytes(tokens: int, width: int, heads: int, mlp_width: int, act_bytes: int,
                quick_gelu: bool = False, residual_bytes: int = 4) -> int:
    """What one pre-norm transformer block saves for backward, per sequence of `tokens`:
    input x and x + attention at `residual_bytes`; LayerNorm outputs (2), q, k, v (3) and the attention
    output (1) at `act_bytes`; the MLP hidden layer before and after the activation (2, QuickGELU 3);
    the attention's log-sum-exp and the LayerNorms' mean and rstd in fp32."""
    token_vectors = 2 * residual_bytes * width + 6 * act_bytes * width
    hidden = (3 if quick_gelu else 2) * act_bytes * mlp_width
    statistics = 4 * (heads + 4)
    return tokens * (token_vectors + hidden + statistics)


def no_grad_block_bytes(tokens: int, width: int, mlp_width: int, act_bytes: int) -> int:
    """The largest transient of a block run without gradients: the residual, the LayerNorm output and
    the MLP hidden layer before and after the activation."""
    return tokens * (2 * width + 2 * mlp_width) * act_bytes


@dataclass(frozen=True)
class ClipShape:
    """What the memory depends on in an open_clip CLIP config (a ViT image tower)."""

    embed_dim: int
    image_size: int
    patch_size: int
    vision: Stack  # tokens = patches + class token
    text: Stack  # tokens = the context length; a step's captions have `words` of them
    vocab_size: int

    @property
    def image_tokens(self) -> int:
        return self.vision.tokens

    def params(self) -> int:
        """Every parameter of the CLIP: patch embedding, class and position embeddings, LayerNorms,
        blocks and projections of both towers, the token embedding and the logit scale."""
        v, t, d = self.vision, self.text, self.embed_dim
        vision = 3 * self.patch_size ** 2 * v.width + (v.tokens + 1) * v.width + 4 * v.width
        vision += v.layers * v.block_params() + v.width * d
        text = (self.vocab_size + t.tokens) * t.width + 2 * t.width + t.layers * t.block_params() + t.width * d
        return vision + text + 1


def clip_shape(model_name: str) -> ClipShape:
    """The shape of an open_clip model from its config (`open_clip.get_model_config`); tclib's tiny
    configs are registered by tclib.models.backbone."""
    import open_clip

    from ..models import backbone  # noqa: F401  registers tclib's configs

    config = open_clip.get_model_config(model_name)
    if not config:
        raise ParamsError(f"unknown clip_model {model_name!r}: no open_clip config to estimate its memory from")
    vision, text = config["vision_cfg"], config["text_cfg"]
    if not isinstance(vision.get("layers"), int) or not vision.get("patch_size"):
        raise ParamsError(f"clip_model {model_name!r}: the memory estimate covers ViT image towers only")
    quick = bool(config.get("quick_gelu", False))
    width, grid = vision["width"], vision["image_size"] // vision["patch_size"]
    heads = width // vision.get("head_width", 64)
    mlp = int(width * vision.get("mlp_ratio", 4.0))
    text_width = text.get("width", 512)
    return ClipShape(
        embed_dim=config["embed_dim"], image_size=vision["image_size"], patch_size=vision["patch_size"],
        vision=Stack(grid * grid + 1, width, vision["layers"], heads, mlp, quick),
        text=Stack(text.get("context_length", 77), text_width, text.get("layers", 12), text.get("heads", 8),
                   int(text_width * text.get("mlp_ratio", 4.0)), quick),
        vocab_size=text.get("vocab_size", 49408))


def temporal_stack(shape: ClipShape, frames: int, layers: int) -> Stack:
    """CLIP4Clip's seqTransf head: width D, D/64 heads, MLP 4D, over the frames of a video."""
    d = shape.embed_dim
    return Stack(frames, d, layers, max(1, d // 64), 4 * d, shape.vision.quick_gelu)


@dataclass(frozen=True)
class TrainingSetup:
    """Everything the estimate reads: the model and one process's share of a training step."""

    clip_model: str
    micro_batch: int  # videos (and captions) per forward with gradients
    frames: int
    words: int
    precision: str = "fp32"
    grad_checkpointing: bool = False
    temporal: str = "seqTransf"
    temporal_layers: int = 4
    afa: bool = True
    teachers: tuple[str, ...] = ()
    teacher_mode: str = "cached"
    gpu_batch: int | None = None  # the process's whole batch; > micro_batch: accumulation pre-encodes it
    gpus: int = 1
    foreach_optimizer: bool = True  # AdamW's multi-tensor kernel (CUDA's default); False: per tensor (CPU)

    @property
    def act_bytes(self) -> int:
        return 2 if self.precision == "bf16" else 4


@dataclass(frozen=True)
class MemoryEstimate:
    """One process's training memory in bytes: what it holds, the transients of each moment of the
    step, and the peak over those moments (see the module docstring)."""

    setup: TrainingSetup
    weights: int
    gradients: int  # with DDP's buckets over several GPUs
    optimizer: int  # AdamW's moments
    bf16_weights: int  # autocast's copies, kept for backward
    image_tower: int  # activations kept for backward, per micro-batch
    text_tower: int
    head: int  # temporal head, AFA, pooling, losses
    batch: int  # the process's batch on the device
    teachers: int  # cached features, or online teachers' weights and forward
    normalization: int  # transient: the frames made float and normalized (two fp32 copies)
    backward: int  # transient: backward's buffers (and recomputed block) in the image tower
    pre_encoding: int  # transient: accumulation's pass over the whole batch without gradients
    optimizer_step: int  # transient: AdamW's temporaries

    def moments(self) -> dict[str, int]:
        """Live bytes at each moment of a step: the frames normalized (the text tower done), the start
        of backward, accumulation's pre-encoding, the optimizer step."""
        held = self.weights + self.optimizer + self.batch + self.teachers
        return {"normalization": held + self.text_tower + self.normalization,
                "backward": held + self.bf16_weights + self.image_tower + self.text_tower + self.head + self.backward,
                "pre-encoding": held + self.pre_encoding,
                "optimizer step": held + self.gradients + self.optimizer_step}

    @property
    def peak(self) -> int:
        return max(self.moments().values())

    @property
    def peak_moment(self) -> str:
        moments = self.moments()
        return max(moments, key=moments.__getitem__)

    def rows(self) -> list[tuple[str, int]]:
        """(part, bytes) in the order the table shows them, the peak last."""
        parts = [(ROW_NAMES.get(f.name, f.name.replace("_", " ")), getattr(self, f.name))
                 for f in dataclasses.fields(self)[1:]]
        return parts + [(f"peak (at {self.peak_moment})", self.peak)]


ROW_NAMES = {"bf16_weights": "bf16 weight copies", "image_tower": "activations: image tower",
             "text_tower": "activations: text tower", "head": "activations: head, losses",
             "normalization": "transient: normalization", "backward": "transient: backward",
             "pre_encoding": "transient: pre-encoding", "optimizer_step": "transient: optimizer step"}


def estimate_training_memory(clip_model: str, micro_batch: int, frames: int, words: int, **options) -> MemoryEstimate:
    """The estimate for `clip_model` at `micro_batch` videos of `frames` frames and captions of `words`
    tokens; `options` are the other fields of TrainingSetup (precision, grad_checkpointing, ...)."""
    return estimate(TrainingSetup(clip_model, micro_batch, frames, words, **options))


def estimate(setup: TrainingSetup) -> MemoryEstimate:
    shape = clip_shape(setup.clip_model)
    params = shape.params() + student_head_params(shape, setup)
    largest = max(shape.vocab_size * shape.text.width, shape.vision.block_params())
    return MemoryEstimate(
        setup=setup, weights=4 * params, gradients=4 * params * (2 if setup.gpus > 1 else 1),
        optimizer=4 * ADAM_MOMENTS * params,
        bf16_weights=2 * matrix_params(shape, setup) if setup.precision == "bf16" else 0,
        image_tower=setup.micro_batch * setup.frames * image_bytes(shape, setup),
        text_tower=setup.micro_batch * text_bytes(shape, setup),
        head=head_bytes(shape, setup), batch=batch_bytes(shape, setup), teachers=teacher_bytes(shape, setup),
        normalization=2 * 4 * setup.micro_batch * setup.frames * 3 * shape.image_size ** 2,
        backward=backward_buffers(shape, setup), pre_encoding=pre_encoding_bytes(shape, setup),
        optimizer_step=4 * params if setup.foreach_optimizer else 2 * 4 * largest)


def student_head_params(shape: ClipShape, setup: TrainingSetup) -> int:
    """seqTransf: frame position embeddings (one per text position) and its blocks; AFA: two linears."""
    d = shape.embed_dim
    count = 0
    if setup.temporal == "seqTransf":
        count += shape.text.tokens * d + setup.temporal_layers * temporal_stack(shape, setup.frames, 1).block_params()
    return count + (d * d + 2 * d + 1 if setup.afa else 0)


def matrix_params(shape: ClipShape, setup: TrainingSetup) -> int:
    """The matrices autocast casts to bf16: the towers' linears, the patch embedding and the projections."""
    count = shape.vision.matrix_params() + shape.text.matrix_params() + 3 * shape.patch_size ** 2 * shape.vision.width
    count += (shape.vision.width + shape.text.width) * shape.embed_dim
    if setup.temporal == "seqTransf":
        count += setup.temporal_layers * temporal_stack(shape, setup.frames, 1).matrix_params()
    return count


def stack_bytes(stack: Stack, tokens: int, setup: TrainingSetup, residual_bytes: int = 4) -> int:
    """What a stack keeps per sequence of `tokens` for backward: every block's activations, or under
    checkpointing each block's input (its residual stream)."""
    if setup.grad_checkpointing:
        return stack.layers * tokens * stack.width * residual_bytes
    return stack.layers * block_bytes(tokens, stack.width, stack.heads, stack.mlp_width, setup.act_bytes,
                                      stack.quick_gelu, residual_bytes)


def image_bytes(shape: ClipShape, setup: TrainingSetup) -> int:
    """Per frame: the normalized image the patch embedding keeps, ln_pre's input, the blocks, ln_post's
    input and output (the class token's row keeps it whole). The image tower's residual stream is at
    the activation width: under autocast the patch embedding is bf16 and open_clip's LayerNorm casts
    back to its input's type."""
    v, a = shape.vision, setup.act_bytes
    image = 3 * shape.image_size ** 2 * a
    return image + 3 * v.tokens * v.width * a + stack_bytes(v, v.tokens, setup, residual_bytes=a)


def text_bytes(shape: ClipShape, setup: TrainingSetup) -> int:
    """Per caption of `words` tokens: the blocks, ln_final's input and output, the projected words."""
    t, a = shape.text, setup.act_bytes
    ends = setup.words * (t.width * (4 + 4 + a) + shape.embed_dim * 4)
    return ends + stack_bytes(t, setup.words, setup) + t.layers * setup.words ** 2 * MASK_BYTES


def head_bytes(shape: ClipShape, setup: TrainingSetup) -> int:
    """The temporal head's blocks and key masks (one copy per head), AFA, pooling and the losses."""
    b, f, d = setup.micro_batch, setup.frames, shape.embed_dim
    total = b * f * d * 4 * HEAD_COPIES + (setup.gpus * b) ** 2 * 4 * LOSS_COPIES
    if setup.temporal == "seqTransf":
        stack = temporal_stack(shape, f, setup.temporal_layers)
        total += b * stack_bytes(stack, f, setup)
        total += b * stack.heads * f * f * MASK_BYTES * 2
    return total


def batch_bytes(shape: ClipShape, setup: TrainingSetup) -> int:
    """The process's batch on the device: uint8 frames, int64 tokens, the frame mask."""
    b = setup.gpu_batch or setup.micro_batch
    return b * (setup.frames * 3 * shape.image_size ** 2 + setup.words * 8 + setup.frames * 8)


def backward_buffers(shape: ClipShape, setup: TrainingSetup) -> int:
    """Backward's transient in the image tower (the largest) under checkpointing: one block's recomputed
    activations and the gradients flowing through it. Without checkpointing backward frees each
    block's activations as it goes, faster than gradients come: the peak is where backward starts."""
    if not setup.grad_checkpointing:
        return 0
    v, a = shape.vision, setup.act_bytes
    one_block = setup.micro_batch * setup.frames * block_bytes(v.tokens, v.width, v.heads, v.mlp_width, a,
                                                              v.quick_gelu, residual_bytes=a)
    return round(one_block * (1 + GRADIENT_SHARE))


def pre_encoding_bytes(shape: ClipShape, setup: TrainingSetup) -> int:
    """Accumulation over micro-batches first encodes the whole per-GPU batch without gradients: the
    features it keeps and its largest layer (in the image tower)."""
    if not setup.gpu_batch or setup.gpu_batch <= setup.micro_batch:
        return 0
    v = shape.vision
    images = setup.gpu_batch * setup.frames
    features = setup.gpu_batch * (setup.frames + 1) * shape.embed_dim * 4
    layer = max(no_grad_block_bytes(v.tokens, v.width, v.mlp_width, setup.act_bytes), 2 * 4 * 3 * shape.image_size ** 2)
    return features + images * layer


def teacher_bytes(shape: ClipShape, setup: TrainingSetup) -> int:
    """Cached: the batch's teacher features (words, frames and up to 4 tokens a frame, fp32 on the
    device). Online: each teacher's fp32 weights, and one teacher's forward without gradients."""
    if not setup.teachers:
        return 0
    b = setup.gpu_batch or setup.micro_batch
    features = b * (setup.words + 5 * setup.frames + 2) * shape.embed_dim * 4 * len(setup.teachers)
    if setup.teacher_mode == "cached":
        return features
    teacher = shape.params() + TEACHER_HEAD_LAYERS * temporal_stack(shape, setup.frames, 1).block_params()
    v = shape.vision
    forward = b * setup.frames * no_grad_block_bytes(v.tokens, v.width, v.mlp_width, 4)
    return len(setup.teachers) * 4 * teacher + features + forward


def setup_from_params(params, run: str, device: str = "cuda") -> TrainingSetup:
    """The TrainingSetup of one run of `params` (a tclib.params.Params): the micro-batch is
    batch_size / gpus / grad_accumulation; teachers count for teaching runs."""
    from ..experiment.runs import parse_run

    spec = parse_run(run)
    gpu_batch = max(1, params.batch_size // params.gpus)
    teachers = tuple(spec.teachers_of(params.teachers))
    return TrainingSetup(
        clip_model=params.clip_model, micro_batch=max(1, math.ceil(gpu_batch / params.grad_accumulation)),
        frames=params.max_frames, words=params.max_words, precision=params.precision,
        grad_checkpointing=params.grad_checkpointing, temporal=spec.temporal, temporal_layers=params.temporal_layers,
        afa=spec.afa, teachers=teachers, teacher_mode=params.teacher_mode, gpu_batch=gpu_batch, gpus=params.gpus,
        foreach_optimizer=device != "cpu")


def estimate_params_memory(params, **changes) -> MemoryEstimate:
    """The estimate of the run of `params` that needs the most memory; `changes` override params keys
    (gpus, grad_accumulation, grad_checkpointing, ...) as a what-if, without validating them again."""
    values = SimpleNamespace(**{**params.to_dict(), **changes})
    return max((estimate(setup_from_params(values, run)) for run in params.runs), key=lambda e: e.peak)
