"""AFA, the student, the X-CLIP teacher and checkpoints, against values derived by hand."""

import math

import pytest
import torch

from tclib.errors import CheckpointError
from tclib.losses import fine_teaching_loss
from tclib.models import AFA, XCLIP, CLIP4Clip, Tokenizer, load_checkpoint, load_clip, masked_mean_pool
from tclib.models.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return load_clip("tclib-tiny", "")


def hand_afa(temperature: float = 1.0, mask_padding: bool = False) -> AFA:
    """fc1 = identity, fc2 picks the first coordinate: logit(frame) = relu(frame)[0]."""
    afa = AFA(2, temperature, mask_padding)
    with torch.no_grad():
        afa.fc1.weight.copy_(torch.eye(2))
        afa.fc1.bias.zero_()
        afa.fc2.weight.copy_(torch.tensor([[1.0, 0.0]]))
        afa.fc2.bias.zero_()
    return afa


def test_afa_against_hand_values():
    # frames [2, 0] and [0, 1]: logits 2 and 0; weights softmax([2, 0]) = [e^2, 1] / (e^2 + 1)
    afa = hand_afa(temperature=1.0)
    video, logits = afa(torch.tensor([[[2.0, 0.0], [0.0, 1.0]]]))
    assert logits.tolist() == [[2.0, 0.0]]
    w0, w1 = math.e**2 / (math.e**2 + 1), 1 / (math.e**2 + 1)  # 0.88080, 0.11920
    norm = math.hypot(w0, w1)  # the frames are unit vectors along the axes: video = normalize([w0, w1])
    assert video[0].tolist() == pytest.approx([w0 / norm, w1 / norm], abs=1e-6)  # [0.99096, 0.13411]


def test_afa_temperature_sharpens_aggregation_only():
    # tau = 0.1: aggregation weights softmax([20, 0]) -> [1 - 2.06e-9, 2.06e-9]; frame_weights stay at tau 1
    afa = hand_afa(temperature=0.1)
    video, logits = afa(torch.tensor([[[2.0, 0.0], [0.0, 1.0]]]))
    assert video[0, 1].item() == pytest.approx(math.exp(-20), rel=1e-3)
    assert afa.frame_weights(logits)[0].tolist() == pytest.approx([0.880797, 0.119203], abs=1e-6)


def test_afa_weighs_padded_slots_as_the_reference_by_default():
    # The reference's softmax runs over every slot: logits [2, 0, 5] -> weights e^[2, 0, 5] / sum
    afa = hand_afa(temperature=1.0)
    frames = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [5.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])
    video, logits = afa(frames, mask)
    total = math.e**2 + 1 + math.e**5
    expected = [math.e**2 / total, 1 / total, math.e**5 / total]  # [0.04661, 0.00631, 0.94708]
    assert afa.frame_weights(logits, mask)[0].tolist() == pytest.approx(expected, abs=1e-6)
    # video = normalize(w0 [1, 0] + w1 [0, 1] + w2 [1, 0])
    x, y = expected[0] + expected[2], expected[1]
    assert video[0].tolist() == pytest.approx([x / math.hypot(x, y), y / math.hypot(x, y)], abs=1e-6)


def test_afa_mask_padding_gives_padded_frames_zero_weight():
    afa = hand_afa(temperature=1.0, mask_padding=True)
    frames = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [5.0, 0.0]]])  # the third (logit 5) is padding
    mask = torch.tensor([[1, 1, 0]])
    video, logits = afa(frames, mask)
    unpadded, _ = afa(frames[:, :2])
    assert torch.allclose(video, unpadded)
    assert afa.frame_weights(logits, mask)[0, 2].item() == 0.0
    with pytest.raises(ValueError, match="mask shape"):
        afa(frames, torch.ones(1, 2))


def test_fine_teaching_gradient_reaches_afa_and_handles_padding():
    torch.manual_seed(0)
    afa = AFA(8)
    frames = torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])
    relevance = torch.softmax(torch.randn(3, 5), -1) * mask
    relevance = relevance / relevance.sum(-1, keepdim=True)
    _, logits = afa(frames, mask)
    loss = fine_teaching_loss(afa.frame_weights(logits, mask), relevance)
    assert torch.isfinite(loss)
    loss.backward()
    assert afa.fc1.weight.grad.abs().sum() > 0 and afa.fc2.weight.grad.abs().sum() > 0


def test_masked_mean_pool_by_hand():
    # normalize([3, 4]) = [0.6, 0.8], normalize([1, 0]) = [1, 0]; mean [0.8, 0.4]; normalized [0.894427, 0.447214]
    frames = torch.tensor([[[3.0, 4.0], [1.0, 0.0], [9.0, -9.0]]])
    pooled = masked_mean_pool(frames, torch.tensor([[1, 1, 0]]))
    assert pooled[0].tolist() == pytest.approx([0.894427, 0.447214], abs=1e-6)


def test_tokenizer_layout():
    tokenize = Tokenizer(max_words=6)
    tokens = tokenize(["a red circle", "one two three four five six seven"])
    sot, eot = tokenize.sot, tokenize.eot
    assert tokens.shape == (2, 6)
    assert tokens[0, 0] == sot and tokens[0, 4] == eot and tokens[0, 5] == 0  # 3 words + SOT + EOT + pad
    assert tokens[1, 0] == sot and tokens[1, 5] == eot  # truncated to 4 words, EOT kept last


@pytest.mark.parametrize("temporal,afa,mask_padding", [("meanP", False, False), ("seqTransf", False, False),
                                                      ("seqTransf", True, False), ("seqTransf", True, True)])
def test_student_padded_frames(clip, temporal, afa, mask_padding):
    """Padded slots enter as zeros in normalized space whatever the frame source holds there; mean
    pooling (and AFA with mask_padding) then ignores them, AFA as the reference weighs them."""
    torch.manual_seed(1)
    student = CLIP4Clip(clip, temporal=temporal, afa=afa, temporal_layers=2, mask_padding=mask_padding).eval()
    frames = torch.randint(0, 256, (2, 4, 3, 32, 32), dtype=torch.uint8)
    junk = torch.randint(0, 256, (2, 2, 3, 32, 32), dtype=torch.uint8)
    black = torch.zeros(2, 2, 3, 32, 32, dtype=torch.uint8)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        short, _ = student.encode_video(frames, torch.ones(2, 4, dtype=torch.long))
        padded, afa_logits = student.encode_video(torch.cat([frames, junk], 1), mask)
        padded_black, _ = student.encode_video(torch.cat([frames, black], 1), mask)
        out = student(Tokenizer(32)(["a red circle", "a blue square"]), frames, torch.ones(2, 4, dtype=torch.long))
    assert torch.equal(padded, padded_black)
    assert torch.allclose(short, padded, atol=1e-5) == (not afa or mask_padding)
    assert out.logits.shape == (2, 2)
    assert (afa_logits is not None) == afa
    assert torch.allclose(padded.norm(dim=-1), torch.ones(2))


def test_seqtransf_starts_from_text_tower(clip):
    student = CLIP4Clip(clip, temporal="seqTransf", temporal_layers=2)
    first_text = clip.transformer.resblocks[0].attn.in_proj_weight
    assert torch.equal(student.temporal.transformer.resblocks[0].attn.in_proj_weight, first_text)
    # as the reference: one frame position per text position (the context length, 32 here)
    assert torch.equal(student.temporal.frame_position_embeddings.weight, clip.positional_embedding)


def xclip_by_hand(clip) -> tuple[XCLIP, dict, dict]:
    """One text (one word) and one video of two frames, in 2-D, with CLIP's logit scale set to 1."""
    teacher = XCLIP(clip, max_words=1, max_frames=2, temporal_layers=1)
    with torch.no_grad():
        teacher.clip.logit_scale.fill_(0.0)
        for name in ("global_mat_weight", "local_mat_weight"):
            setattr(teacher, name, torch.nn.Parameter(torch.eye(2)))
    text = {"sentence": torch.tensor([[1.0, 0.0]]), "words": torch.tensor([[[1.0, 0.0]]])}
    video = {"video": torch.tensor([[0.6, 0.8]]), "frames": torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]),
             "mask": torch.tensor([[1, 1]])}
    return teacher, text, video


def test_xclip_similarity_by_hand(clip):
    teacher, text, video = xclip_by_hand(clip)
    # video-sentence s.v = 0.6; video-word (one word) w.v = 0.6; sentence-frame: scores [1, 0], attention
    # softmax([100, 0]) ~ [1, 0] -> 1; frame-word: word-frame scores [1, 0] reduce to 1 both ways -> 1.
    # mean of the four: (0.6 + 0.6 + 1 + 1) / 4 = 0.8
    assert teacher.similarity(text, video).item() == pytest.approx(0.8, abs=1e-6)
    # swapping the frame mixing matrix sends the sentence-frame attention to the zero-score frame:
    # (0.6 + 0.6 + 0 + 1) / 4 = 0.55
    with torch.no_grad():
        teacher.frame_logit_weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    assert teacher.similarity(text, video).item() == pytest.approx(0.55, abs=1e-6)


def test_xclip_relevance_is_softmax_of_sentence_frame_cosine(clip):
    teacher, text, video = xclip_by_hand(clip)
    # softmax([1, 0]) = [e / (e + 1), 1 / (e + 1)] = [0.731059, 0.268941]
    assert teacher.relevance(text, video)[0].tolist() == pytest.approx([0.731059, 0.268941], abs=1e-6)
    video["mask"] = torch.tensor([[1, 0]])  # as the reference, the padded slot keeps its share by default
    assert teacher.relevance(text, video)[0].tolist() == pytest.approx([0.731059, 0.268941], abs=1e-6)
    teacher.mask_padding = True
    assert teacher.relevance(text, video)[0].tolist() == pytest.approx([1.0, 0.0])


def test_xclip_forward_shapes(clip):
    teacher = XCLIP(clip, max_words=32, max_frames=3, temporal_layers=1)
    frames = torch.randint(0, 256, (4, 3, 3, 32, 32), dtype=torch.uint8)
    out = teacher(Tokenizer(32)(["a", "b", "c", "d"]), frames, torch.ones(4, 3, dtype=torch.long))
    assert out.logits.shape == (4, 4)


def test_checkpoint_round_trip_and_wrong_keys(tmp_path, clip):
    student = CLIP4Clip(clip, temporal="meanP", afa=True)
    path = save_checkpoint(student.state_dict(), tmp_path / "student.pt")
    assert not (tmp_path / "student.pt.tmp").exists()
    other = CLIP4Clip(load_clip("tclib-tiny"), temporal="meanP", afa=True)
    load_checkpoint(other, path)
    assert torch.equal(other.afa.fc1.weight, student.afa.fc1.weight)
    seq = CLIP4Clip(load_clip("tclib-tiny"), temporal="seqTransf", afa=True)
    with pytest.raises(CheckpointError, match=r"student\.pt: does not fit CLIP4Clip: missing keys "
                                              r"\['temporal\.frame_position_embeddings\.weight'.*\(49 in all\)$"):
        load_checkpoint(seq, path)
    seq_path = save_checkpoint(seq.state_dict(), tmp_path / "seq.pt")
    with pytest.raises(CheckpointError, match=r"seq\.pt: .*unexpected keys \['temporal\..*\(49 in all\)$"):
        load_checkpoint(other, seq_path)
    state = student.state_dict()
    state["afa.fc2.weight"] = torch.zeros(1, 3)
    bad_shape = save_checkpoint(state, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match=r"shape\.pt: .*wrong shapes \['afa\.fc2\.weight \(1, 3\) "
                                              r"\(model \(1, 64\)\)'\]"):
        load_checkpoint(other, bad_shape)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(other, tmp_path / "nope.pt")


def test_load_clip_rejects_unknown_names(tmp_path):
    from tclib.errors import ParamsError

    with pytest.raises(ParamsError, match="unknown clip_model"):
        load_clip("no-such-model")
    with pytest.raises(ParamsError, match="neither a file nor a pretrained tag"):
        load_clip("tclib-tiny", "laion-nonsense")
    with pytest.raises(CheckpointError, match="not found"):
        load_clip("tclib-tiny", str(tmp_path / "missing.pt"))


def test_xclip_loads_a_checkpoint_with_reference_key_names(tmp_path, clip):
    # released X-CLIP checkpoints call the seqTransf head frame_position_embeddings.* and transformerClip.*
    teacher = XCLIP(clip, max_words=32, max_frames=12, temporal_layers=2)
    with torch.no_grad():
        teacher.frame_logit_weight.mul_(3.0)
    reference = {}
    for key, value in teacher.state_dict().items():
        key = key.replace("temporal.frame_position_embeddings.", "frame_position_embeddings.")
        reference["module." + key.replace("temporal.transformer.", "transformerClip.")] = value
    assert "transformerClip.resblocks.0.attn.in_proj_weight" in {k.removeprefix("module.") for k in reference}
    path = save_checkpoint(reference, tmp_path / "msrvtt-9k_xclip_model.bin")
    fresh = XCLIP(load_clip("tclib-tiny"), max_words=32, max_frames=12, temporal_layers=2)
    load_checkpoint(fresh, path)
    for (name, a), b in zip(teacher.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # the same logits and relevance on the same input, a padded video included
    torch.manual_seed(3)
    tokens = Tokenizer(32)(["a red circle", "a blue square", "a white cross"])
    frames = torch.randint(0, 256, (3, 12, 3, 32, 32), dtype=torch.uint8)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 7:] = 0
    with torch.no_grad():
        outputs = [(m.similarity(m.encode_text(tokens), m.encode_video(frames, mask)),
                    m.relevance(m.encode_text(tokens), m.encode_video(frames, mask))) for m in (teacher.eval(), fresh.eval())]
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])

    reference["transformerClip.extra.weight"] = torch.zeros(1)
    save_checkpoint(reference, path)
    with pytest.raises(CheckpointError, match=r"msrvtt-9k_xclip_model\.bin: does not fit XCLIP: unexpected keys "
                                              r"\['transformerClip\.extra\.weight'\] \(1 in all\)$"):
        load_checkpoint(fresh, path)
    del reference["transformerClip.extra.weight"]
    reference["module.frame_logit_weight"] = torch.eye(10)  # a teacher of 10 frames, not 12
    save_checkpoint(reference, path)
    with pytest.raises(CheckpointError, match=r"wrong shapes \['frame_logit_weight \(10, 10\) \(model \(12, 12\)\)'\]"):
        load_checkpoint(fresh, path)


def test_teacher_options_reach_the_teacher(clip):
    from tclib.errors import ParamsError
    from tclib.models import build_teacher

    teacher = build_teacher("ts2net", clip, max_words=32, max_frames=4, temporal_layers=1, noisy_selection=True)
    assert teacher.noisy_selection is True and teacher.token_shift is False
    with pytest.raises(ParamsError, match=r"teacher 'xclip' has no option\(s\) \['heads'\]"):
        build_teacher("xclip", clip, max_words=32, max_frames=4, heads=2)
