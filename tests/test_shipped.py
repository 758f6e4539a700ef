"""The curricula shipped in `hf_mentornet/pretrained/` (made by `recipes/make_shipped_curricula.py`)."""

import pytest
import torch

from hf_mentornet import MentorNetModel, load_curriculum, shipped_curricula
from hf_mentornet.hub import SHIPPED_CURRICULA_DIR
from hf_mentornet.learning import curriculum_mse

PREDEFINED = ["baseline", "focal", "hard-example-mining", "mentornet-pd", "self-paced", "spcl-linear"]
# Shipped curricula learned from a predefined one (mentornet-dd is data-driven, made by the lead with a student).
SHIPPED_PREDEFINED = [name for name in shipped_curricula() if name in PREDEFINED]


def test_every_predefined_curriculum_ships():
    assert set(PREDEFINED) <= set(shipped_curricula())


@pytest.mark.parametrize("name", shipped_curricula())
def test_shipped_directory_is_complete_and_tiny(name):
    files = {path.name: path.stat().st_size for path in (SHIPPED_CURRICULA_DIR / name).iterdir()}
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)
    assert max(files.values()) < 20_000


@pytest.mark.parametrize("name", SHIPPED_PREDEFINED)
def test_shipped_curriculum_loads_by_name_and_matches_its_card_and_curriculum(name):
    model = MentorNetModel.from_pretrained(name)
    assert load_curriculum(name).config.to_dict() == model.config.to_dict()
    config = model.config
    assert config.curriculum_name == name and config.curriculum_kind == "predefined"
    assert config.hidden_size == 1 and config.num_steps == 1  # usable by any trainer
    recorded = config.learned_from["test_mse"]
    assert {"steps", "seed", "seconds"} <= set(config.learned_from)
    card = (SHIPPED_CURRICULA_DIR / name / "README.md").read_text(encoding="utf-8")
    assert f"- Name: `{name}`" in card and f"- test_mse: {recorded:.4g}" in card
    assert f'MentorNetModel.from_pretrained("{name}")' in card
    # On fresh grid points the MentorNet reproduces its predefined curriculum about as well as recorded.
    assert curriculum_mse(model, num_samples=2_000) < 10 * recorded + 1e-4


def test_shipped_training_settings():
    pd = MentorNetModel.from_pretrained("mentornet-pd").config
    assert (pd.loss_p_percentile, pd.loss_moving_average_decay, pd.burn_in_fraction) == (0.75, 0.95, 0.2)
    assert pd.example_dropout_schedule == [[0.5, 17], [0.05, 83]]
    assert "burn_in_epoch=0" in pd.learned_from["notes"]
    baseline = MentorNetModel.from_pretrained("baseline")
    assert baseline.config.burn_in_fraction == 0.0 and baseline.config.example_dropout_schedule is None
    loss = torch.tensor([0.0, 5.0, 29.0])
    assert (baseline(loss, loss - 2.0, epoch=60).weights > 0.99).all()


@pytest.mark.parametrize(
    "name, noise_rate, percentile",
    [("mentornet-dd", 0.4, 0.75), ("mentornet-dd-0.2", 0.2, 0.75), ("mentornet-dd-0.8", 0.8, 0.5)],
)
def test_shipped_data_driven_curricula_match_their_cards(name, noise_rate, percentile):
    model = MentorNetModel.from_pretrained(name)
    config = model.config
    assert config.curriculum_kind == "data-driven" and config.curriculum_name == name
    # The released DD command's settings travel with it (p = 0.5 at 80% noise).
    assert config.fixed_epoch_after_burn_in and config.example_dropout_schedule == [[0.5, 17], [0.05, 78], [0.9, 5]]
    assert config.loss_p_percentile == percentile
    learned = config.learned_from
    assert learned["noise_rates"] == [noise_rate] and learned["dataset_size"] == 5000
    card = (SHIPPED_CURRICULA_DIR / name / "README.md").read_text(encoding="utf-8")
    for key in ("heldout_accuracy", "heldout_auroc"):
        assert f"- {key}: {learned[key]:.4g}" in card
    assert f"- num_records: {learned['num_records']}" in card
    assert f'MentorNetModel.from_pretrained("{name}")' in card
    # Its outputs: the weight falls with the loss (the paper's Proposition 1), from high to near 0, at the epoch it
    # is used at after burn-in and the moving average of its records' loss percentile.
    loss = torch.linspace(0.0, 10.0, 21)
    loss_percentile = learned["loss_percentiles"][learned["percentiles"].index(100 * percentile)]
    with torch.no_grad():
        weights = model(loss, loss - loss_percentile, epoch=20).weights
    assert (weights[1:] <= weights[:-1] + 1e-4).all()
    assert weights[0] > 0.8 and weights[-1] < 0.1


@pytest.mark.parametrize(
    "name, regime, noise_rate, percentile",
    [
        (f"mentornet-dd-{regime}-{rate:g}", regime, rate, percentile)
        for regime in ("full", "noreg")
        for rate, percentile in ((0.2, 0.8), (0.4, 0.6), (0.8, 0.2))
    ],
)
def test_relearned_data_driven_curricula_say_what_they_were_learned_from(name, regime, noise_rate, percentile):
    model = MentorNetModel.from_pretrained(name)
    config = model.config
    assert config.curriculum_kind == "data-driven" and config.curriculum_name == name
    # p was chosen on the trusted rows: the largest candidate below their share of right labels.
    assert config.loss_p_percentile == percentile
    learned = config.learned_from
    assert learned["regime"] == regime and learned["noise_rates"] == [noise_rate]
    assert learned["loss_diff_reference"] == "trainer" and learned["student_parameters"] == 604074
    assert learned["trusted_images"] == 1000 and learned["train_images"] == 20000
    card = (SHIPPED_CURRICULA_DIR / name / "README.md").read_text(encoding="utf-8")
    assert f"step {learned['student_step']}" in card and f"p = {percentile:g}" in card and f"`{regime}`" in card
    assert f'MentorNetModel.from_pretrained("{name}")' in card
    # The threshold target: weight ~1 below the learned loss_diff cut-off, ~0 above it, falling with the loss.
    loss = torch.linspace(0.0, 10.0, 21)
    with torch.no_grad():
        weights = model.eval()(loss, loss - learned["loss_percentiles"][0], epoch=50).weights
    assert (weights[1:] <= weights[:-1] + 1e-4).all()
    assert weights[0] > 0.9 and weights[-1] < 0.1


def test_shipped_cards_carry_hub_metadata_and_no_local_paths():
    for folder in sorted(SHIPPED_CURRICULA_DIR.iterdir()):
        card = (folder / "README.md").read_text()
        front_matter = card.split("---")[1]
        assert "library_name: hf_mentornet" in front_matter and "- mentornet" in front_matter
        assert "../" not in card and "../" not in (folder / "config.json").read_text(), folder.name
        if folder.name.startswith("mentornet-dd"):
            assert "datasets:\n- uoft-cs/cifar10" in front_matter
