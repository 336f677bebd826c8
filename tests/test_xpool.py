"""The X-Pool teacher: its pooling head by hand, feature caching, and X-Pool's released key layout."""

import json
import math

import open_clip
import pytest
import torch

from tclib.errors import CheckpointError, ParamsError
from tclib.models import Tokenizer, load_checkpoint, load_clip, save_checkpoint
from tclib.models.teachers.xpool import TextConditionedPool, XPool

TINY = "xpool-test-tiny-quickgelu"


@pytest.fixture(scope="module")
def clip_name(tmp_path_factory):
    """tclib-tiny with QuickGELU, the activation of the HuggingFace CLIP that X-Pool is trained on."""
    folder = tmp_path_factory.mktemp("configs")
    (folder / f"{TINY}.json").write_text(json.dumps({
        "embed_dim": 64, "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}))
    open_clip.add_model_config(folder)
    return TINY


def random_xpool(clip_name: str, seed: int = 0, **options) -> XPool:
    """An XPool whose every weight is moved off its initial value (identities, unit LayerNorms)."""
    torch.manual_seed(seed)
    teacher = XPool(load_clip(clip_name, ""), max_words=32, max_frames=4, **options)
    with torch.no_grad():
        for param in teacher.pool.parameters():
            param.add_(0.1 * torch.randn_like(param))
        teacher.clip.logit_scale.fill_(2.0)
    return teacher.eval()


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three captions and three 4-frame videos; video 1 has 2 real frames, its padded slots zero."""
    tokens = Tokenizer(32)(["a dog runs on the beach", "cooking", "a man plays the guitar on a stage"])
    torch.manual_seed(1)
    frames = torch.randn(3, 4, 3, 32, 32)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1]])
    return tokens, frames * mask[:, :, None, None, None], mask


def scores(teacher: XPool) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and relevance of `batch()`."""
    tokens, frames, mask = batch()
    with torch.no_grad():
        text, video = teacher.encode_text(tokens), teacher.encode_video(frames, mask)
        return teacher.similarity(text, video), teacher.relevance(text, video)


def hand_xpool(clip_name: str, mask_padding: bool = False) -> XPool:
    """D = 2, identity projections (as initialized), logit scale exp(0) = 1."""
    teacher = XPool(load_clip(clip_name, ""), max_words=32, max_frames=3, mask_padding=mask_padding)
    teacher.pool = TextConditionedPool(2)
    with torch.no_grad():
        teacher.clip.logit_scale.zero_()
    return teacher.eval()


# In 2-D, LayerNorm sends [a, b] with a > b to c [1, -1], c = 0.5 / sqrt(0.25 + 1e-5) = 0.99998.
# Text [5, 1] -> q = c [1, -1]; frames [3, 1] -> k1 = c [1, -1], [0, 2] -> k2 = c [-1, 1], and a
# zero padded feature [0, 0] -> k3 = [0, 0]. q.k / sqrt(2) = [sqrt(2), -sqrt(2), 0] (c^2 ~ 1).
HAND_TEXT = {"sentence": torch.tensor([[5.0, 1.0], [1.0, 5.0]])}
HAND_VIDEO = {"frames": torch.tensor([[[3.0, 1.0], [0.0, 2.0], [0.0, 0.0]]]), "mask": torch.tensor([[1, 1, 0]])}


def test_pool_attention_by_hand(clip_name):
    teacher = hand_xpool(clip_name)
    text = {"sentence": HAND_TEXT["sentence"][:1]}
    # every slot, the padded one included: softmax([1.41421, -1.41421, 0]) = [4.11325, 0.24312, 1] / 5.35637
    assert teacher.relevance(text, HAND_VIDEO)[0].tolist() == pytest.approx([0.76792, 0.04539, 0.18669], abs=1e-4)
    # padded slot masked: softmax([1.41421, -1.41421]) = [1, e^-2.82843] / (1 + e^-2.82843) = [0.94419, 0.05581]
    teacher.mask_padding = True
    assert teacher.relevance(text, HAND_VIDEO)[0].tolist() == pytest.approx([0.94419, 0.05581, 0.0], abs=1e-4)


def test_pooling_is_conditioned_on_the_text_by_hand(clip_name):
    # Text [5, 1] leans to frame 1: attended = (0.94419 - 0.05581) c [1, -1], which LayerNorm (and the
    # residual linear, identity: a + a) turn back into c [1, -1]; cosine with [5, 1] = 4 / sqrt(52) = 0.55470.
    # Text [1, 5] leans to frame 2 the same way: pooled c [-1, 1], cosine with [1, 5] = 0.55470 too.
    teacher = hand_xpool(clip_name, mask_padding=True)
    logits = teacher.similarity(HAND_TEXT, HAND_VIDEO)
    assert logits[:, 0].tolist() == pytest.approx([4 / math.sqrt(52)] * 2, abs=1e-4)
    # with the query projection negated, each text attends to the frame unlike itself: cosine -0.55470
    with torch.no_grad():
        teacher.pool.q_proj.weight.neg_()
    assert teacher.similarity(HAND_TEXT, HAND_VIDEO)[:, 0].tolist() == pytest.approx([-4 / math.sqrt(52)] * 2,
                                                                                      abs=1e-4)


def test_features_depend_on_their_own_input_only(clip_name):
    teacher = random_xpool(clip_name)
    tokens, frames, mask = batch()
    with torch.no_grad():
        text, video = teacher.encode_text(tokens), teacher.encode_video(frames, mask)
        logits, relevance = teacher.similarity(text, video), teacher.relevance(text, video)
        assert logits.shape == (3, 3) and relevance.shape == (3, 4)
        assert torch.allclose(teacher.encode_video(frames[1:2], mask[1:2])["frames"], video["frames"][1:2], atol=1e-6)
        # scoring text chunks from cached features gives the same matrix
        chunks = torch.cat([teacher.similarity({"sentence": text["sentence"][i:i + 2]}, video) for i in (0, 2)])
        assert torch.allclose(chunks, logits, atol=1e-6)
        single = teacher.relevance({"sentence": text["sentence"][1:2]}, {k: v[1:2] for k, v in video.items()})
        assert torch.allclose(single, relevance[1:2], atol=1e-6)
    assert relevance.sum(dim=1).tolist() == pytest.approx([1.0] * 3, abs=1e-6)
    assert teacher(tokens, frames, mask).logits.shape == (3, 3)


def test_mask_padding_changes_padded_videos_only(clip_name):
    teacher = random_xpool(clip_name)
    tokens, frames, mask = batch()
    with torch.no_grad():
        text, video = teacher.encode_text(tokens), teacher.encode_video(frames, mask)
        logits, relevance = teacher.similarity(text, video), teacher.relevance(text, video)
        teacher.mask_padding = True
        masked_logits, masked_relevance = teacher.similarity(text, video), teacher.relevance(text, video)
    assert relevance[1, 2:].sum() > 0.01  # as the reference: padded slots keep a share
    assert masked_relevance[1, 2:].tolist() == [0.0, 0.0]
    assert masked_relevance.sum(dim=1).tolist() == pytest.approx([1.0] * 3, abs=1e-6)
    assert torch.allclose(masked_logits[:, [0, 2]], logits[:, [0, 2]], atol=1e-6)
    assert not torch.allclose(masked_logits[:, 1], logits[:, 1], atol=1e-4)


def test_heads_option(clip_name):
    teacher = random_xpool(clip_name, heads=4)
    tokens, frames, mask = batch()
    with torch.no_grad():
        text, video = teacher.encode_text(tokens), teacher.encode_video(frames, mask)
        assert teacher.similarity(text, video).shape == (3, 3)
        assert teacher.relevance(text, video).sum(dim=1).tolist() == pytest.approx([1.0] * 3, abs=1e-6)
    with pytest.raises(ParamsError, match="heads"):
        XPool(load_clip(clip_name, ""), max_words=32, max_frames=4, heads=3)


# ---- X-Pool's released checkpoint layout: HuggingFace CLIPModel names, written here from ours ----

HF_NAMES = {
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.": "text_model.final_layer_norm.",
    "text_projection": "text_projection.weight",
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.": "vision_model.pre_layrnorm.",
    "visual.ln_post.": "vision_model.post_layernorm.",
    "visual.proj": "visual_projection.weight",
    "logit_scale": "logit_scale",
}
TOWERS = (("visual.transformer.resblocks.", "vision_model"), ("transformer.resblocks.", "text_model"))
HF_BLOCK = {"attn.out_proj.": "self_attn.out_proj.", "ln_1.": "layer_norm1.", "ln_2.": "layer_norm2.",
            "mlp.c_fc.": "mlp.fc1.", "mlp.c_proj.": "mlp.fc2."}
XPOOL_HEAD = {"norm_in.": "layer_norm1.", "q_proj.": "cross_attn.q_proj.", "k_proj.": "cross_attn.k_proj.",
              "v_proj.": "cross_attn.v_proj.", "out_proj.": "cross_attn.out_proj.", "norm_attn.": "layer_norm2.",
              "linear.": "linear_proj.", "norm_out.": "layer_norm3."}


def swap_prefix(name: str, table: dict[str, str]) -> str:
    old = next(p for p in table if name.startswith(p))
    return table[old] + name[len(old):]


def as_xpool_release(teacher: XPool) -> dict:
    """Our state dict as X-Pool's trainer saves it: {"epoch", "state_dict" (HF names), "optimizer"}."""
    hf = {}
    for key, value in teacher.state_dict().items():
        if key.startswith("pool."):
            hf["pool_frames." + swap_prefix(key.removeprefix("pool."), XPOOL_HEAD)] = value
            continue
        name = key.removeprefix("clip.")
        for ours, tower in TOWERS:
            if name.startswith(ours):
                index, _, rest = name.removeprefix(ours).partition(".")
                block = f"clip.{tower}.encoder.layers.{index}."
                if rest.startswith("attn.in_proj_"):
                    kind = rest.removeprefix("attn.in_proj_")
                    for part, chunk in zip("qkv", value.chunk(3), strict=True):
                        hf[f"{block}self_attn.{part}_proj.{kind}"] = chunk.clone()
                else:
                    hf[block + swap_prefix(rest, HF_BLOCK)] = value
                break
        else:
            transposed = name in ("text_projection", "visual.proj")  # HF keeps them as Linear weights
            hf["clip." + swap_prefix(name, HF_NAMES)] = value.t() if transposed else value
    hf["clip.text_model.embeddings.position_ids"] = torch.arange(32)[None]
    hf["clip.vision_model.embeddings.position_ids"] = torch.arange(17)[None]
    return {"epoch": 4, "state_dict": hf, "optimizer": {"state": {}, "param_groups": []}}


def test_loads_x_pool_release_layout_strictly(tmp_path, clip_name):
    teacher = random_xpool(clip_name, seed=2)
    release = as_xpool_release(teacher)
    assert "clip.text_model.encoder.layers.1.self_attn.v_proj.bias" in release["state_dict"]
    path = save_checkpoint(release, tmp_path / "model_best.pth")
    fresh = random_xpool(clip_name, seed=3)
    load_checkpoint(fresh, path)
    for (name, a), b in zip(teacher.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for before, after in zip(scores(teacher), scores(fresh), strict=True):  # logits, relevance; video 1 is padded
        assert torch.equal(before, after)


def test_release_with_wrong_keys_or_shapes_is_refused(tmp_path, clip_name):
    teacher = random_xpool(clip_name)
    path = tmp_path / "model_best.pth"

    def refused(edit, message):
        release = as_xpool_release(teacher)
        edit(release["state_dict"])
        save_checkpoint(release, path)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(teacher, path)

    refused(lambda s: s.update({"pool_frames.extra.weight": torch.zeros(1)}),
            r"model_best\.pth: does not fit XPool: unexpected keys \['pool_frames\.extra\.weight'\]")
    refused(lambda s: s.pop("clip.text_model.final_layer_norm.bias"), r"missing keys \['clip\.ln_final\.bias'\]")
    # a block without its q projection: k and v cannot be merged, so both sides are named
    refused(lambda s: s.pop("clip.vision_model.encoder.layers.1.self_attn.q_proj.weight"),
            r"missing keys \['clip\.visual\.transformer\.resblocks\.1\.attn\.in_proj_weight'\].*unexpected keys "
            r"\['clip\.vision_model\.encoder\.layers\.1\.self_attn\.k_proj\.weight', "
            r"'clip\.vision_model\.encoder\.layers\.1\.self_attn\.v_proj\.weight'\]")
    refused(lambda s: s.update({"pool_frames.linear_proj.weight": torch.zeros(3, 64)}),
            r"wrong shapes \['pool_frames\.linear_proj\.weight \(3, 64\) \(model pool\.linear\.weight \(64, 64\)\)'\]")
    refused(lambda s: s.update({"clip.text_model.encoder.layers.0.self_attn.q_proj.bias": torch.zeros(8)}),
            r"wrong shapes \['clip\.transformer\.resblocks\.0\.attn\.in_proj_bias \(136,\) \(model \(192,\)\)'\]")
