"""The TS2-Net teacher: hand-derived values for its parts, reference checkpoints, padding and noise."""

import pytest
import torch
from open_clip.model import CLIP

from tclib.errors import CheckpointError
from tclib.models import Tokenizer, load_checkpoint, load_clip
from tclib.models.checkpoint import save_checkpoint
from tclib.models.teachers.ts2net import (
    SHIFTED_ATTENTION_KEYS,
    UNUSED_KEYS,
    TS2Net,
    select_tokens,
    shift_tokens,
    token_mask,
)

# Our names -> the names TeachCLIP's TS2-Net module gives its parameters (the inverse of adapt_state_dict).
TO_REFERENCE = {"temporal.frame_position_embeddings.": "frame_position_embeddings.",
                "temporal.transformer.": "transformerClip.",
                "token_scorer.norm.": "visual_token_selector.score_predictor.in_conv.0.",
                "token_scorer.reduce.": "visual_token_selector.score_predictor.in_conv.1.",
                "token_scorer.hidden.": "visual_token_selector.score_predictor.out_conv.0.",
                "token_scorer.out.": "visual_token_selector.score_predictor.out_conv.2."}


def to_reference(state: dict) -> dict:
    """A state dict as a released checkpoint names it, with the modules the reference loads but never uses."""
    renamed = {}
    for key, value in state.items():
        prefix = next((p for p in TO_REFERENCE if key.startswith(p)), None)
        renamed[TO_REFERENCE[prefix] + key[len(prefix):] if prefix else key] = value
    renamed.update({key: torch.randn(3) for key in UNUSED_KEYS})
    return renamed


def randomized(teacher: TS2Net, seed: int = 0) -> TS2Net:
    """Move every parameter off its initial value (identity LayerNorms, copied text layers...)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for param in teacher.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return teacher.eval()


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(1)
    tokens = Tokenizer(32)(["a dog runs", "a cat sleeps on a mat", "rain"])
    frames = torch.randint(0, 256, (3, 4, 3, 32, 32), dtype=torch.uint8)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 0, 0, 0]])
    return tokens, frames, mask


def scores_of(teacher: TS2Net, batch) -> tuple[torch.Tensor, torch.Tensor]:
    tokens, frames, mask = batch
    with torch.no_grad():
        text, video = teacher.encode_text(tokens), teacher.encode_video(frames, mask)
        return teacher.similarity(text, video), teacher.relevance(text, video)


def test_select_tokens_keeps_class_and_sorted_top3():
    # token i holds the value i; patch scores (tokens 1..5) [0.1, 0.9, -0.5, 0.7, 0.8]: the best three
    # are tokens 2 (0.9), 5 (0.8), 4 (0.7), kept in token order after the class token: [0, 2, 4, 5]
    tokens = torch.arange(6.0).view(1, 6, 1)
    scores = torch.tensor([[-1.0, 0.1, 0.9, -0.5, 0.7, 0.8]])
    assert select_tokens(tokens, scores).flatten().tolist() == [0.0, 2.0, 4.0, 5.0]
    # the perturbed top-k: token 3 (0.69) is 0.01 behind token 4 (0.7), a fifth of the noise sigma (0.05), so
    # noisy samples keep one or the other and the third selected token is a mixture of tokens 3 and 4
    close = torch.tensor([[-1.0, 0.1, 2.0, 0.69, 0.7, 1.5]])
    assert select_tokens(tokens, close).flatten().tolist() == [0.0, 2.0, 4.0, 5.0]
    torch.manual_seed(0)
    noisy = select_tokens(tokens, close, noisy=True).flatten().tolist()
    assert noisy[:2] == [0.0, 2.0] and 3.0 < noisy[2] < 4.0 and noisy[3] == pytest.approx(5.0)
    # far apart scores: every noisy sample agrees with the hard top-3
    far = torch.tensor([[-1.0, 1.0, 9.0, -5.0, 7.0, 8.0]])
    assert select_tokens(tokens, far, noisy=True).flatten().tolist() == [0.0, 2.0, 4.0, 5.0]


def test_token_mask_is_tiled_as_the_reference():
    # two frames, the second padded; tokens are frame-major: 4 of frame 0, then 4 of frame 1
    mask = torch.tensor([[1, 0]])
    assert token_mask(mask, tiled=True).tolist() == [[1, 0, 1, 0, 1, 0, 1, 0]]  # token j <- frame j % 2
    assert token_mask(mask, tiled=False).tolist() == [[1, 1, 1, 1, 0, 0, 0, 0]]  # token j <- frame j // 4


def test_tiled_mask_changes_what_the_temporal_head_sees():
    torch.manual_seed(0)
    teacher = TS2Net(load_clip("tclib-tiny", ""), max_words=32, max_frames=2, temporal_layers=1).eval()
    tokens, mask = torch.randn(1, 8, 64), torch.tensor([[1, 0]])
    changed = {j: tokens.clone() for j in (1, 4)}
    for j, x in changed.items():
        x[0, j] += 5.0 * torch.randn(64)  # not a constant shift, which LayerNorm would remove
    for mask_padding, (token_1_counts, token_4_counts) in ((False, (False, True)), (True, (True, False))):
        teacher.mask_padding = mask_padding
        with torch.no_grad():
            base = teacher.temporal_frames(tokens, mask)[:, 0]  # frame 0's class-token output
            moved = {j: teacher.temporal_frames(x, mask)[:, 0] for j, x in changed.items()}
        # tiled: frame 0's token 1 is masked out, the padded frame's token 4 is attended; per frame: the reverse
        assert (not torch.allclose(moved[1], base, atol=1e-6)) == token_1_counts
        assert (not torch.allclose(moved[4], base, atol=1e-6)) == token_4_counts


def hand_teacher(mask_padding: bool = False) -> TS2Net:
    teacher = TS2Net(load_clip("tclib-tiny", ""), max_words=32, max_frames=3, mask_padding=mask_padding)
    with torch.no_grad():
        teacher.clip.logit_scale.fill_(0.0)  # logit scale 1
    return teacher


def test_similarity_is_frame_weighted_by_hand():
    teacher = hand_teacher()
    text = {"sentence": torch.tensor([[1.0, 0.0]])}
    video = {"frames": torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]]), "mask": torch.tensor([[1, 1, 1]])}
    # cosines c = [1, 0, 0.6], ||c|| = sqrt(1.36); w = softmax(4 c / ||c||) = [0.777611, 0.025185, 0.197204]
    # logit = sum w c = 0.777611 + 0.6 * 0.197204 = 0.895933
    assert teacher.similarity(text, video).item() == pytest.approx(0.895933, abs=1e-6)


def test_padded_frames_in_similarity_and_relevance_by_hand():
    text = {"sentence": torch.tensor([[1.0, 0.0]])}
    video = {"frames": torch.tensor([[[1.0, 0.0], [0.6, 0.8]]]), "mask": torch.tensor([[1, 0]])}
    teacher = hand_teacher()
    # the reference keeps frame f where token 4f is unmasked in the tiled mask: frame 1 <- frame 4 % 2 = 0, kept.
    # c = [1, 0.6]: w = softmax(4 c / sqrt(1.36)) = [0.797701, 0.202299]; logit = 0.797701 + 0.6 * 0.202299
    assert teacher.similarity(text, video).item() == pytest.approx(0.919081, abs=1e-6)
    # relevance: softmax over both slots of c = [1, 0.6] -> [0.598688, 0.401312]
    assert teacher.relevance(text, video)[0].tolist() == pytest.approx([0.598688, 0.401312], abs=1e-6)
    teacher.mask_padding = True
    assert teacher.similarity(text, video).item() == pytest.approx(1.0, abs=1e-6)
    assert teacher.relevance(text, video)[0].tolist() == pytest.approx([1.0, 0.0], abs=1e-6)


def test_shift_tokens_by_hand():
    # 2 frames of 14 tokens, 7 divisions: step 2; tokens 1, 3, ..., 13 take the previous frame's value,
    # tokens 4, 6, ..., 12 the next frame's; frame 0 keeps its own 1, 3, ...; frame 1 its own 4, 6, ...
    x = torch.stack([torch.full((14, 1), 10.0), torch.full((14, 1), 20.0)])  # (N*F, L, W)
    out = shift_tokens(x, num_frames=2)[..., 0]
    assert out[0].tolist() == [10, 10, 10, 10, 20, 10, 20, 10, 20, 10, 20, 10, 20, 10]
    assert out[1].tolist() == [20, 10, 20, 10, 20, 10, 20, 10, 20, 10, 20, 10, 20, 10]


def test_loads_a_checkpoint_with_reference_key_names(tmp_path, batch):
    teacher = randomized(TS2Net(load_clip("tclib-tiny", ""), max_words=32, max_frames=4, temporal_layers=2))
    reference = to_reference(teacher.state_dict())
    assert "visual_token_selector.score_predictor.in_conv.1.weight" in reference
    path = save_checkpoint(reference, tmp_path / "msrvtt-9k_ts2net_model.bin")
    fresh = TS2Net(load_clip("tclib-tiny", ""), max_words=32, max_frames=4, temporal_layers=2).eval()
    load_checkpoint(fresh, path)
    logits, relevance = scores_of(teacher, batch)
    fresh_logits, fresh_relevance = scores_of(fresh, batch)
    assert torch.equal(logits, fresh_logits) and torch.equal(relevance, fresh_relevance)
    assert logits.shape == (3, 3) and relevance.shape == (3, 4)
    assert relevance.sum(dim=1).tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)


def test_wrong_keys_and_shapes_are_named(tmp_path):
    teacher = TS2Net(load_clip("tclib-tiny", ""), max_words=32, max_frames=4, temporal_layers=2)
    reference = to_reference(teacher.state_dict())
    reference["transformerClip.extra.weight"] = torch.zeros(1)
    del reference["visual_token_selector.score_predictor.out_conv.2.weight"]
    path = save_checkpoint(reference, tmp_path / "keys.bin")
    with pytest.raises(CheckpointError, match=r"keys\.bin: does not fit TS2Net: missing keys "
                                              r"\['token_scorer\.out\.weight'\].*"
                                              r"unexpected keys \['transformerClip\.extra\.weight'\]"):
        load_checkpoint(teacher, path)
    reference = to_reference(teacher.state_dict())
    reference["frame_position_embeddings.weight"] = torch.zeros(77, 64)
    path = save_checkpoint(reference, tmp_path / "shape.bin")
    with pytest.raises(CheckpointError, match=r"shape\.bin: .*wrong shapes \['frame_position_embeddings\.weight \(77, 64\) "
                                              r"\(model temporal\.frame_position_embeddings\.weight \(32, 64\)\)'\]"):
        load_checkpoint(teacher, path)


def twelve_layer_clip() -> CLIP:
    """A tiny CLIP whose image tower has the 12 layers of ViT-B, so that layers 10 and 11 exist."""
    torch.manual_seed(0)
    return CLIP(64, dict(image_size=32, patch_size=8, width=64, head_width=32, layers=12),
                dict(context_length=32, vocab_size=49408, width=64, heads=2, layers=2))


def test_shifted_layer_attention_keys(tmp_path, batch):
    # TS2-Net saves the attention of image layers 10-11 as ...attn.net.*: TeachCLIP ignores those and
    # keeps the backbone's (pretrained) attention there; token_shift=True loads them, as TS2-Net does.
    trained = randomized(TS2Net(twelve_layer_clip(), max_words=32, max_frames=4))
    reference = {}
    for key, value in to_reference(trained.state_dict()).items():
        wrapped = key.replace(".attn.", ".attn.net.")
        reference[wrapped if wrapped in SHIFTED_ATTENTION_KEYS else key] = value
    path = save_checkpoint(reference, tmp_path / "ts2net.bin")
    backbone = twelve_layer_clip()
    teachclip = TS2Net(backbone, max_words=32, max_frames=4)
    own_attention = backbone.visual.transformer.resblocks[10].attn.in_proj_weight.clone()
    load_checkpoint(teachclip, path)
    assert torch.equal(teachclip.clip.visual.transformer.resblocks[10].attn.in_proj_weight, own_attention)
    assert torch.equal(teachclip.clip.visual.transformer.resblocks[9].attn.in_proj_weight,
                       trained.clip.visual.transformer.resblocks[9].attn.in_proj_weight)
    shifted = TS2Net(twelve_layer_clip(), max_words=32, max_frames=4, token_shift=True).eval()
    load_checkpoint(shifted, path)
    for a, b in zip(trained.state_dict().values(), shifted.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    shifted_logits, _ = scores_of(shifted, batch)
    shifted.token_shift = False
    assert not torch.allclose(scores_of(shifted, batch)[0], shifted_logits)
    assert torch.equal(scores_of(shifted, batch)[0], scores_of(trained, batch)[0])


def test_video_features_ignore_what_lies_in_padded_slots(batch):
    _, frames, mask = batch
    teacher = randomized(TS2Net(load_clip("tclib-tiny", ""), max_words=32, max_frames=4, temporal_layers=1))
    black, junk = frames.clone(), frames.clone()
    black[mask == 0] = 0
    junk[mask == 0] = torch.randint(0, 256, junk[mask == 0].shape, dtype=torch.uint8)
    with torch.no_grad():
        a, b = teacher.encode_video(black, mask), teacher.encode_video(junk, mask)
    assert torch.equal(a["frames"], b["frames"])


def test_noisy_selection_is_an_option_and_the_default_is_deterministic(batch):
    teacher = randomized(TS2Net(load_clip("tclib-tiny", ""), max_words=32, max_frames=4, temporal_layers=1))
    first, second = scores_of(teacher, batch), scores_of(teacher, batch)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    teacher.noisy_selection = True
    torch.manual_seed(0)
    noisy = scores_of(teacher, batch)
    assert not torch.allclose(noisy[0], first[0])
    assert TS2Net(load_clip("tclib-tiny", ""), 32, 4, noisy_selection=True).noisy_selection
