"""The MentorNet model, its config, its model card and the predefined curricula."""

import json
import math

import pytest
import torch
from huggingface_hub import HfApi
from transformers import AutoModel

from hf_mentornet import CURRICULA, MentorNetConfig, MentorNetModel, curriculum_weights, feature_grid
from hf_mentornet.hub import model_card


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MentorNetModel(MentorNetConfig()).eval()


def test_output_shapes_and_range(model):
    loss = torch.tensor([0.0, 1.0, 5.0, 29.0])
    output = model(loss, loss - 1.0, epoch=torch.tensor([0, 10, 50, 99]))
    assert output.logits.shape == output.weights.shape == (4,)
    assert ((output.weights >= 0) & (output.weights <= 1)).all()
    assert torch.allclose(output.weights, torch.sigmoid(output.logits))
    # 2-D input of one step and an int epoch give the same weights as 1-D input.
    same = model(loss[:, None], loss[:, None] - 1.0, epoch=torch.tensor([0, 10, 50, 99])).weights
    assert torch.allclose(same, output.weights)
    logits, weights = model(loss, loss, 5, return_dict=False)
    assert logits.shape == weights.shape == (4,)


def test_loss_history():
    history = MentorNetModel(MentorNetConfig(num_steps=3, hidden_size=4))
    loss = torch.rand(5, 3)
    assert history(loss, loss - 0.5, epoch=20).weights.shape == (5,)
    with pytest.raises(ValueError, match=r"`loss` has shape \(5,\).*\(batch_size, 3\)"):
        history(loss[:, 0], loss[:, 0], epoch=20)


def test_save_load_roundtrip_and_automodel(model, tmp_path):
    model.config.curriculum_name = "focal"
    model.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in tmp_path.iterdir()}
    features = feature_grid(64, seed=1)
    expected = model(features["loss"], features["loss_diff"], features["epoch"]).weights
    for loaded in (MentorNetModel.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path)):
        assert isinstance(loaded, MentorNetModel)
        assert loaded.config.curriculum_name == "focal"
        assert torch.allclose(loaded(features["loss"], features["loss_diff"], features["epoch"]).weights, expected)


def test_epoch_embedding_frozen_by_default():
    assert not MentorNetModel(MentorNetConfig()).epoch_embedding.weight.requires_grad
    assert MentorNetModel(MentorNetConfig(trainable_epoch_embedding=True)).epoch_embedding.weight.requires_grad


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m: m(torch.ones(3, 2), torch.ones(3, 2), 1), ValueError, "`loss` has shape"),
        (lambda m: m(torch.ones(3), torch.ones(4), 1), ValueError, "`loss_diff`"),
        (lambda m: m(torch.ones(3, dtype=torch.long), torch.ones(3), 1), TypeError, "`loss` must be a floating"),
        (lambda m: m(torch.tensor([1.0, math.nan]), torch.ones(2), 1), ValueError, "`loss` contains NaN"),
        (lambda m: m(torch.ones(2), torch.tensor([0.0, math.inf]), 1), ValueError, "`loss_diff` contains NaN"),
        (lambda m: m(torch.ones(2), torch.ones(2), 100), ValueError, "`epoch` values must be in 0..99"),
        (lambda m: m(torch.ones(2), torch.ones(2), torch.tensor([1.0, 2.0])), TypeError, "`epoch` must be an int"),
        (lambda m: m(torch.ones(2), torch.ones(2), 1, torch.tensor([0, 2])), ValueError, "`label` values"),
    ],
)
def test_bad_inputs_name_the_argument(model, call, error, match):
    with pytest.raises(error, match=match):
        call(model)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hidden_size": 0}, "`hidden_size`=0"),
        ({"num_steps": 1.5}, "`num_steps`=1.5"),
        ({"loss_p_percentile": 75}, "`loss_p_percentile`=75"),
        ({"loss_moving_average_decay": 1.0}, "`loss_moving_average_decay`"),
        ({"burn_in_fraction": 20}, "`burn_in_fraction`=20"),
        ({"example_dropout_schedule": [[0.5, 17], [0.05, 80]]}, "must sum to 100"),
        ({"example_dropout_schedule": [[1.5, 100]]}, "rates must be in"),
        ({"curriculum_kind": "learned"}, "`curriculum_kind`='learned'"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MentorNetConfig(**kwargs)


def test_unknown_curriculum_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown curriculum 'spl'.*self-paced.*focal"):
        curriculum_weights("spl", torch.ones(2), torch.ones(2), 0)


def weights(name, loss, loss_diff, epoch=50, label=None, **params):
    return curriculum_weights(name, torch.tensor(loss), torch.tensor(loss_diff), epoch, label, **params).tolist()


def test_curricula_against_hand_computed_values():
    loss, diff = [0.5, 1.0, 3.0], [-0.5, 0.0, 2.0]
    assert weights("baseline", loss, diff) == [1.0, 1.0, 1.0]
    assert weights("self-paced", loss, diff) == [1.0, 1.0, 0.0]
    assert weights("hard-example-mining", loss, diff) == [0.0, 1.0, 1.0]
    assert weights("hard-example-mining", loss, diff, label=torch.tensor([1, 0, 0])) == [1.0, 1.0, 1.0]
    assert weights("spcl-linear", loss, [-0.5, 0.25, 2.0]) == pytest.approx([1.0, 0.75, 0.0])
    assert weights("spcl-linear", loss, [0.5, 1.0, 3.0], gamma=2.0) == pytest.approx([0.75, 0.5, 0.0])
    focal = [(1 - math.exp(-x)) ** 2 for x in loss]
    assert weights("focal", loss, diff) == pytest.approx(focal)
    assert weights("focal", loss, diff, gamma=1.0) == pytest.approx([1 - math.exp(-x) for x in loss])
    # Eq. 7 on the raw loss: lambda1 = 1, lambda2 = 2 -> clip(1 - (l - 1) / 2, 0, 1).
    assert weights("closed-form", loss, diff, lambda1=1.0, lambda2=2.0, relative=False) == pytest.approx(
        [1.0, 1.0, 0.0]
    )
    assert weights("closed-form", [0.0, 2.0, 4.0], diff, lambda1=1.0, lambda2=2.0, relative=False) == pytest.approx(
        [1.0, 0.5, 0.0]
    )
    assert weights("closed-form", loss, diff, lambda1=0.0, lambda2=0.0) == [1.0, 1.0, 0.0]


def test_epoch_dependent_curricula():
    loss, diff = [1.0, 1.0], [-0.5, 0.5]
    assert weights("mentornet-pd", loss, diff, epoch=10) == [1.0, 1.0]  # burn-in
    assert weights("mentornet-pd", loss, diff, epoch=50) == [1.0, 0.0]  # self-paced
    assert weights("mentornet-pd", loss, diff, epoch=95) == pytest.approx([1.0, 0.5])  # SPCL linear
    assert weights("temporal-mixture", loss, diff, epoch=49) == [1.0, 0.0]  # self-paced
    assert weights("temporal-mixture", loss, diff, epoch=50) == [0.0, 1.0]  # hard example mining


def test_prediction_variance():
    # exp(-loss) alternating 1 and 0 (loss 0 and +large): std 0.5 -> weight 1; a constant history -> 0.
    loss = torch.tensor([[0.0, 50.0, 0.0, 50.0], [1.0, 1.0, 1.0, 1.0]])
    assert curriculum_weights("prediction-variance", loss, loss, 0).tolist() == pytest.approx([1.0, 0.0], abs=1e-6)
    with pytest.raises(ValueError, match="num_steps >= 2"):
        curriculum_weights("prediction-variance", torch.ones(2), torch.ones(2), 0)
    assert set(CURRICULA) >= {"self-paced", "hard-example-mining", "spcl-linear", "focal", "temporal-mixture"}


def card_config():
    return MentorNetConfig(
        curriculum_name="focal",
        curriculum_kind="predefined",
        curriculum_params={"gamma": 2.0},
        learned_from={"objective": "mse", "test_mse": 1.234567e-5, "steps": 3000, "seed": 0},
        example_dropout_schedule=[[0.5, 17], [0.05, 83]],
    )


def test_model_card_front_matter_and_content():
    card = model_card(card_config(), "me/focal-mentornet", tags=["cifar10"])
    front_matter = card.split("---\n")[1]
    assert "library_name: hf_mentornet" in front_matter
    assert "license: apache-2.0" in front_matter
    for tag in ("mentornet", "curriculum-learning", "noisy-labels", "cifar10"):
        assert f"- {tag}\n" in front_matter
    assert "- Name: `focal`" in card
    assert "- Kind: predefined" in card
    assert '`{"gamma": 2.0}`' in card
    assert "- test_mse: 1.235e-05" in card
    assert "| 0.75 |" in card and "| 20% of training |" in card and "[[0.5, 17], [0.05, 83]]" in card
    assert 'MentorNetModel.from_pretrained("me/focal-mentornet")' in card
    assert 'MentorNetTrainingArguments(output_dir="student", curriculum="me/focal-mentornet")' in card
    assert "@inproceedings{jiang2018mentornet" in card
    assert "$" not in card  # every placeholder filled


def test_push_to_hub_uploads_weights_config_and_card(monkeypatch):
    captured = {}

    class RepoUrl:
        repo_id = "me/focal-mentornet"

    def create_repo(self, repo_id, **kwargs):
        captured["repo"] = repo_id
        return RepoUrl()

    def create_commit(self, repo_id, operations, **kwargs):
        captured["files"] = {}
        for operation in operations:
            with open(operation.path_or_fileobj, "rb") as file:
                captured["files"][operation.path_in_repo] = file.read()
        captured["message"] = kwargs["commit_message"]
        return "commit"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    model = MentorNetModel(card_config())
    assert model.push_to_hub("focal-mentornet", tags=["cifar10"]) == "commit"
    files = captured["files"]
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)
    assert json.loads(files["config.json"])["curriculum_name"] == "focal"
    card = files["README.md"].decode()
    assert card == model_card(model.config, "me/focal-mentornet", tags=["cifar10"])
    assert 'from_pretrained("me/focal-mentornet")' in card and "- cifar10" in card


def test_save_pretrained_push_to_hub_goes_through_the_card(monkeypatch, tmp_path):
    pushed = {}
    monkeypatch.setattr(MentorNetModel, "push_to_hub", lambda self, repo_id, **kwargs: pushed.update(repo=repo_id))
    model = MentorNetModel(card_config())
    model.save_pretrained(tmp_path / "focal-mentornet", push_to_hub=True)
    assert pushed == {"repo": "focal-mentornet"}
    card = (tmp_path / "focal-mentornet" / "README.md").read_text()
    assert f'from_pretrained("{tmp_path / "focal-mentornet"}")' in card
