import json

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, IterableDataset, Value

from hf_mentornet.noise import add_sample_index, inject_label_noise, noise_report, save_noise_report

N, M = 4000, 10


def make_dataset(n=N, m=M, label_column="label", class_label=True):
    labels = np.arange(n) % m
    feature = ClassLabel(num_classes=m) if class_label else Value("int64")
    features = Features({label_column: feature, "x": Value("int64")})
    return Dataset.from_dict({label_column: labels, "x": np.arange(n)}, features=features)


def changed(ds, label_column="label"):
    return np.asarray(ds[label_column]) != np.asarray(ds["clean_label"])


def within_binomial(count, n, p, sigmas=4.0):
    return abs(count - n * p) <= sigmas * np.sqrt(n * p * (1 - p)) + 1


def test_deterministic_per_seed_and_different_across_seeds():
    ds = make_dataset()
    a = inject_label_noise(ds, 0.4, seed=3)["label"]
    b = inject_label_noise(ds, 0.4, seed=3)["label"]
    c = inject_label_noise(ds, 0.4, seed=4)["label"]
    assert a == b
    assert a != c


@pytest.mark.parametrize(
    ("noise_type", "rate", "expected"),
    [("uniform", 0.4, 0.4 * (M - 1) / M), ("uniform", 0.8, 0.8 * (M - 1) / M), ("pair", 0.3, 0.3)],
)
def test_realised_rate_within_sampling_error(noise_type, rate, expected):
    out = inject_label_noise(make_dataset(), rate, noise_type, seed=1)
    assert within_binomial(changed(out).sum(), N, expected)
    assert out["is_noisy"] == changed(out).tolist()


def test_symmetric_changes_exactly_round_p_n_to_other_classes():
    for rate in (0.0, 0.2, 0.55, 1.0):
        out = inject_label_noise(make_dataset(n=1001), rate, "symmetric", seed=7)
        assert changed(out).sum() == round(rate * 1001)
    # The new class is uniform over the other m - 1 classes.
    out = inject_label_noise(make_dataset(), 1.0, "symmetric", seed=0)
    offsets = (np.asarray(out["label"]) - np.asarray(out["clean_label"])) % M
    counts = np.bincount(offsets, minlength=M)
    assert counts[0] == 0
    assert all(within_binomial(k, N, 1 / (M - 1)) for k in counts[1:])


def test_pair_flips_to_next_class():
    out = inject_label_noise(make_dataset(), 0.5, "pair", seed=0)
    clean, noisy = np.asarray(out["clean_label"]), np.asarray(out["label"])
    flipped = noisy != clean
    assert flipped.any()
    assert (noisy[flipped] == (clean[flipped] + 1) % M).all()


def test_transition_matrix_respected():
    ds = make_dataset()
    assert not changed(inject_label_noise(ds, 1.0, "transition", transition_matrix=np.eye(M))).any()
    permutation = np.random.default_rng(0).permutation(M)
    out = inject_label_noise(ds, 1.0, "transition", transition_matrix=np.eye(M)[permutation])
    assert (np.asarray(out["label"]) == permutation[np.asarray(out["clean_label"])]).all()
    # With p < 1, a fraction p of the rows is redrawn from T.
    out = inject_label_noise(ds, 0.25, "transition", transition_matrix=np.eye(M)[np.roll(np.arange(M), 1)])
    assert within_binomial(changed(out).sum(), N, 0.25)
    # A non-degenerate row is sampled with its probabilities.
    matrix = np.full((2, 2), 0.5)
    matrix[1] = [0.2, 0.8]
    out = inject_label_noise(make_dataset(m=2), 1.0, "transition", transition_matrix=matrix)
    noisy_of_ones = np.asarray(out["label"])[np.asarray(out["clean_label"]) == 1]
    assert within_binomial(noisy_of_ones.sum(), len(noisy_of_ones), 0.8)


def test_clean_label_kept_and_second_call_does_not_compound():
    ds = make_dataset()
    once = inject_label_noise(ds, 0.6, seed=0)
    assert once["clean_label"] == ds["label"]
    twice = inject_label_noise(once, 0.6, seed=0)
    assert twice["label"] == once["label"]
    assert twice["clean_label"] == ds["label"]
    assert twice.column_names == once.column_names == ["label", "x", "clean_label", "is_noisy", "sample_index"]
    # Zero noise on a noised dataset gives the clean labels back.
    assert inject_label_noise(once, 0.0)["label"] == ds["label"]


def test_features_kept_custom_column_and_plain_integers():
    out = inject_label_noise(make_dataset(label_column="coarse"), 0.3, label_column="coarse")
    assert isinstance(out.features["coarse"], ClassLabel)
    # The same type as the label column; the id marks the columns inject_label_noise wrote.
    assert out.features["clean_label"].names == out.features["coarse"].names
    assert out.features["is_noisy"] == Value("bool", id="hf_mentornet")
    assert out["sample_index"] == list(range(N))
    plain = inject_label_noise(make_dataset(class_label=False), 0.3)
    assert plain.features["clean_label"] == Value("int64", id="hf_mentornet")
    assert max(plain["label"]) < M  # num_classes inferred as max + 1


def test_shuffled_dataset_keeps_rows_aligned():
    ds = make_dataset().shuffle(seed=0)
    out = inject_label_noise(ds, 0.5)
    assert out["x"] == ds["x"]
    assert out["clean_label"] == ds["label"]


def test_dataset_dict_only_named_splits():
    dd = DatasetDict({"train": make_dataset(), "test": make_dataset(n=100)})
    out = inject_label_noise(dd, 0.5)
    assert "clean_label" in out["train"].column_names
    assert out["test"].column_names == ["label", "x"]
    assert out["test"]["label"] == dd["test"]["label"]
    with pytest.raises(ValueError, match="splits") as error:
        inject_label_noise(dd, 0.5, splits=("validation",))
    assert "train" in str(error.value)


def test_stream_resume_and_shards_give_the_same_noise():
    ds = make_dataset(n=600)
    stream = inject_label_noise(ds.to_iterable_dataset(), 0.5, seed=2)
    full = list(stream)
    assert [e["sample_index"] for e in full] == list(range(600))
    assert [e["label"] for e in stream.skip(450)] == [e["label"] for e in full[450:]]
    assert within_binomial(sum(e["is_noisy"] for e in full), 600, 0.45)
    # Sharded at the source, with the index added before streaming: every shard agrees with the full stream.
    sharded = inject_label_noise(add_sample_index(ds).to_iterable_dataset(num_shards=3), 0.5, seed=2)
    by_index = {e["sample_index"]: e["label"] for e in full}
    for k in range(3):
        shard = list(sharded.shard(3, k))
        assert shard and all(by_index[e["sample_index"]] == e["label"] for e in shard)
    assert isinstance(stream.features["clean_label"], ClassLabel)
    assert list(inject_label_noise(ds.to_iterable_dataset(), 0.5, seed=3)) != full


def test_stream_rejects_symmetric_and_needs_num_classes():
    with pytest.raises(ValueError, match="uniform"):
        inject_label_noise(make_dataset().to_iterable_dataset(), 0.5, "symmetric")
    generator = IterableDataset.from_generator(lambda: ({"label": i % 3} for i in range(30)))
    with pytest.raises(ValueError, match="num_classes"):
        inject_label_noise(generator, 0.5)
    out = list(inject_label_noise(generator, 0.5, num_classes=3))
    assert [e["clean_label"] for e in out] == [i % 3 for i in range(30)]


def test_add_sample_index_once():
    ds = add_sample_index(make_dataset(n=10).shuffle(seed=0))
    assert ds["sample_index"] == list(range(10))
    again = add_sample_index(ds.select([3, 1]))
    assert again["sample_index"] == [3, 1]


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"label_column": "target"}, ValueError, "label_column"),
        ({"noise_rate": 1.5}, ValueError, "noise_rate"),
        ({"noise_rate": -0.1}, ValueError, "noise_rate"),
        ({"noise_type": "gaussian"}, ValueError, "noise_type"),
        ({"noise_type": "transition"}, ValueError, "transition_matrix"),
        ({"noise_type": "transition", "transition_matrix": np.eye(3)}, ValueError, "transition_matrix"),
        ({"noise_type": "transition", "transition_matrix": np.full((M, M), 0.2)}, ValueError, "transition_matrix"),
        (
            {"noise_type": "transition", "transition_matrix": -np.eye(M)[::-1] + 2 * np.eye(M)},
            ValueError,
            "transition_matrix",
        ),
        ({"transition_matrix": np.eye(M)}, ValueError, "transition_matrix"),
        ({"num_classes": 5}, ValueError, "num_classes"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, argument):
    kwargs = {"noise_rate": 0.2, **kwargs}
    with pytest.raises(error, match=argument) as raised:
        inject_label_noise(make_dataset(n=50), **kwargs)
    if argument == "label_column":
        assert "'x'" in str(raised.value)  # lists the columns there are
    if argument == "noise_type":
        assert "symmetric" in str(raised.value)  # lists the valid types


def test_bad_label_values():
    strings = Dataset.from_dict({"label": ["cat", "dog"]})
    with pytest.raises(TypeError, match="label_column"):
        inject_label_noise(strings, 0.2)
    unlabelled = Dataset.from_dict({"label": [0, -1, 2]})
    with pytest.raises(ValueError, match="outside"):
        inject_label_noise(unlabelled, 0.2)
    with pytest.raises(TypeError, match="dataset"):
        inject_label_noise({"label": [0, 1]}, 0.2)


def test_noise_report_counts_and_files(tmp_path):
    ds = Dataset.from_dict(
        {"label": [0, 1, 1, 2, 0, 2], "clean_label": [0, 0, 1, 2, 2, 2]},
        features=Features(
            {"label": ClassLabel(names=["a", "b", "c"]), "clean_label": ClassLabel(names=["a", "b", "c"])}
        ),
    )
    report = noise_report(ds)
    assert report["num_samples"] == 6 and report["num_noisy"] == 2
    assert report["noise_rate"] == pytest.approx(2 / 6)
    assert report["transition_counts"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert report["per_class_count"] == [2, 1, 3]
    assert report["per_class_noise_rate"] == pytest.approx([0.5, 0.0, 1 / 3])
    assert report["class_names"] == ["a", "b", "c"]
    assert noise_report(ds.to_iterable_dataset())["transition_counts"] == report["transition_counts"]
    json_path, png_path = save_noise_report(report, tmp_path / "out")
    assert json.loads(json_path.read_text()) == report
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="clean_label"):
        noise_report(make_dataset(n=10))


def test_noise_report_matches_injection():
    out = inject_label_noise(make_dataset(), 0.4, "pair", seed=5)
    report = noise_report(out)
    assert report["num_noisy"] == sum(out["is_noisy"])
    counts = np.asarray(report["transition_counts"])
    assert counts.sum() == N
    # Pair flips only fill the diagonal and the (c, c + 1) cells.
    allowed = np.eye(M, dtype=bool) | np.roll(np.eye(M, dtype=bool), 1, axis=1)
    assert counts[~allowed].sum() == 0
