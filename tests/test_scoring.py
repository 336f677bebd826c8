"""Teacher scoring from cached features: the same numbers as running the teacher on the batch."""

import numpy as np
import pytest
import torch

from tclib.models import XCLIP, Tokenizer, load_clip
from tclib.scoring import TeacherScores, encode_teacher_features, load_teacher_features, save_teacher_features


def test_cached_scores_equal_direct_scores_for_the_encoded_rows(tmp_path):
    torch.manual_seed(0)
    teacher = XCLIP(load_clip("tclib-tiny"), max_words=32, max_frames=3, temporal_layers=1).eval()
    tokens = Tokenizer(32)(["a red circle", "a blue square", "a white cross"])
    frames = np.random.default_rng(0).integers(0, 256, (4, 3, 3, 32, 32), dtype=np.uint8)
    mask = np.array([[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0]])
    # only frame-source rows 3 and 1 are used by the training split, given out of order
    features = encode_teacher_features(teacher, tokens, frames, mask, [3, 1], 2, torch.device("cpu"))
    assert features.video["video"].shape[0] == 2
    features = load_teacher_features(save_teacher_features(tmp_path / "features.pt", features))

    scores = TeacherScores([teacher], [features])
    caption_index, video_index = torch.tensor([2, 0]), torch.tensor([1, 3])
    (logits,), (relevance,) = scores(caption_index, video_index)
    with torch.no_grad():
        text = teacher.encode_text(tokens[caption_index])
        video = teacher.encode_video(torch.from_numpy(frames[[1, 3]]), torch.from_numpy(mask[[1, 3]]))
        assert torch.allclose(logits, teacher.similarity(text, video), atol=1e-5)
        assert torch.allclose(relevance, teacher.relevance(text, video), atol=1e-6)
    assert relevance[1, 1:].tolist() == [0.0, 0.0]  # row 3 has one real frame

    for missing in (torch.tensor([0]), torch.tensor([2]), torch.tensor([7])):
        with pytest.raises(ValueError, match="not cached"):
            scores(torch.tensor([0]), missing)
