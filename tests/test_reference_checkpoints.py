"""Students trained with the reference code (TeachCLIP's or CLIP4Clip's training scripts) load
strictly and compute the same embeddings, AFA weights and logits as the model they were saved from."""

import pytest
import torch

from tclib.errors import CheckpointError
from tclib.models import CLIP4Clip, Tokenizer, load_checkpoint, load_clip

# tclib's names of the student's own layers -> the reference's (the inverse of CLIP4Clip.adapt_state_dict)
TO_REFERENCE = {"temporal.frame_position_embeddings.": "frame_position_embeddings.",
                "temporal.transformer.": "transformerClip.", "afa.fc1.": "frameLinear.", "afa.fc2.": "frameLinear2."}


def reference_state(student: CLIP4Clip) -> dict[str, torch.Tensor]:
    """The student's weights under the reference's key names, as its save_model writes them
    (a DataParallel-wrapped model's state dict: every key prefixed with module.)."""
    state = {}
    for key, value in student.state_dict().items():
        prefix = next((p for p in TO_REFERENCE if key.startswith(p)), None)
        state["module." + (TO_REFERENCE[prefix] + key[len(prefix):] if prefix else key)] = value.clone()
    return state


def perturbed_student(**kwargs) -> CLIP4Clip:
    torch.manual_seed(0)
    student = CLIP4Clip(load_clip("tclib-tiny", ""), temporal_layers=2, **kwargs).eval()
    with torch.no_grad():  # move every weight off its initial value so no layer passes by luck
        for parameter in student.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    return student


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(1)
    tokens = Tokenizer(32)(["a red circle on grass", "a blue square", "a white cross spinning"])
    frames = torch.randint(0, 256, (3, 6, 3, 32, 32), dtype=torch.uint8)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]])  # two padded videos
    return tokens, frames, mask


@pytest.mark.parametrize("temporal,afa", [("seqTransf", True), ("seqTransf", False), ("meanP", False)])
def test_reference_student_loads_strictly_and_computes_the_same(tmp_path, batch, temporal, afa):
    student = perturbed_student(temporal=temporal, afa=afa)
    state = reference_state(student)
    if not afa:  # TeachCLIP's training code builds AFA's layers in every student, used or not
        state["module.frameLinear.weight"], state["module.frameLinear.bias"] = torch.zeros(64, 64), torch.zeros(64)
        state["module.frameLinear2.weight"], state["module.frameLinear2.bias"] = torch.zeros(1, 64), torch.zeros(1)
    torch.save(state, tmp_path / "pytorch_model.bin.4")
    loaded = CLIP4Clip(load_clip("tclib-tiny", ""), temporal=temporal, afa=afa, temporal_layers=2).eval()
    load_checkpoint(loaded, tmp_path / "pytorch_model.bin.4")

    tokens, frames, mask = batch
    with torch.no_grad():
        assert torch.equal(loaded.encode_text(tokens), student.encode_text(tokens))
        video, afa_logits = loaded.encode_video(frames, mask)
        expected_video, expected_logits = student.encode_video(frames, mask)
        assert torch.equal(video, expected_video)
        assert torch.equal(loaded(tokens, frames, mask).logits, student(tokens, frames, mask).logits)
        if afa:
            assert torch.equal(loaded.afa.frame_weights(afa_logits, mask),
                               student.afa.frame_weights(expected_logits, mask))


def test_reference_student_with_missing_or_misshapen_keys_is_refused(tmp_path):
    student = perturbed_student(temporal="seqTransf", afa=True)
    state = reference_state(student)
    del state["module.frameLinear2.bias"]
    state["module.cross.pooler.dense.weight"] = torch.zeros(64, 64)  # a tightTransf head: not this model
    state["module.frameLinear.weight"] = torch.zeros(32, 64)
    torch.save(state, tmp_path / "pytorch_model.bin.0")
    fresh = CLIP4Clip(load_clip("tclib-tiny", ""), temporal="seqTransf", afa=True, temporal_layers=2)
    before = fresh.afa.fc1.weight.clone()
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin\.0: does not fit CLIP4Clip: "
                                              r"missing keys \['afa\.fc2\.bias'\] \(1 in all\); "
                                              r"unexpected keys \['cross\.pooler\.dense\.weight'\] \(1 in all\); "
                                              r"wrong shapes \['frameLinear\.weight \(32, 64\) \(model afa\.fc1\.weight \(64, 64\)\)'\]"):
        load_checkpoint(fresh, tmp_path / "pytorch_model.bin.0")
    assert torch.equal(fresh.afa.fc1.weight, before)  # nothing loaded
