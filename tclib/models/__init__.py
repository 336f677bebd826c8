"""Models: the CLIP backbone, the CLIP4Clip/TeachCLIP student with AFA, and the teachers."""

from .afa import AFA, masked_softmax
from .backbone import Tokenizer, encode_frames, encode_text_tokens, load_clip
from .checkpoint import load_checkpoint, save_checkpoint
from .outputs import RetrievalOutput, StudentOutput
from .student import CLIP4Clip, TemporalTransformer, masked_mean_pool
from .teachers import TEACHERS, XCLIP, Teacher, build_teacher

__all__ = [
    "AFA", "CLIP4Clip", "RetrievalOutput", "StudentOutput", "TEACHERS", "Teacher", "TemporalTransformer", "Tokenizer",
    "XCLIP", "build_teacher", "encode_frames", "encode_text_tokens", "load_checkpoint", "load_clip",
    "masked_mean_pool", "masked_softmax", "save_checkpoint",
]
