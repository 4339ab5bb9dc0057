"""The most exposed members' inputs: kept at audit time, read back by the report, drawn as thumbnails or values."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from labelleak.data import load_digits
from labelleak.report.records import exposed_context, record_rows
from labelleak.report.thumbnails import (
    INPUTS,
    describe_inputs,
    feature_text,
    is_image,
    read_exposed_inputs,
    thumbnail,
    write_exposed_inputs,
)


def _decode(uri: str) -> np.ndarray:
    import matplotlib.image

    assert uri.startswith("data:image/png;base64,")
    return matplotlib.image.imread(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])), format="png")


@pytest.mark.parametrize(
    ("shape", "image"),
    [((3, 32, 32), True), ((1, 8, 8), True), ((1, 7, 8), False), ((2, 16, 16), False), ((64,), False), ((8, 8), False)],
)
def test_only_one_or_three_channel_images_of_at_least_8x8_are_drawn(shape, image):
    assert is_image(shape) is image


def test_feature_text_shows_the_first_values_then_how_many():
    assert feature_text(np.arange(10) / 4) == "0, 0.25, 0.5, 0.75, 1, 1.25, ... (10 values)"
    assert feature_text(np.array([0.123456, 2.0])) == "0.123, 2"


def test_thumbnail_is_the_image_scaled_to_its_own_range():
    x = np.zeros((3, 8, 10), np.float32)
    x[0, 2, 3], x[2, 5, 1] = 4.0, 2.0  # range 0..4: red 1.0 at (2, 3), blue 0.5 at (5, 1)
    img = _decode(thumbnail(x))
    assert img.shape[:2] == (8, 10)
    assert img[2, 3, 0] == pytest.approx(1.0) and img[5, 1, 2] == pytest.approx(0.5, abs=1 / 255)
    assert img[0, 0, :3].max() == 0.0
    gray = _decode(thumbnail(np.full((1, 8, 8), 3.0)))  # a flat image is black, not a division by zero
    assert gray[:, :, :3].max() == 0.0


def test_written_inputs_are_the_listed_members_in_order_and_read_back(tmp_path):
    rng = np.random.default_rng(0)
    is_member = np.r_[np.ones(30, bool), np.zeros(30, bool)]
    sample_index = np.arange(100, 160)[::-1]  # ids that are not positions
    inputs = rng.random((60, 5))
    rows, _ = record_rows(sample_index, is_member, {"a": rng.normal(size=60) + 2 * is_member})
    write_exposed_inputs(tmp_path, rows, sample_index, inputs, top=4)
    listed = [r["sample_index"] for r in rows if r["is_member"]][:4]
    with np.load(tmp_path / INPUTS) as data:
        assert data["sample_index"].tolist() == listed
        assert data["x"].shape == (4, 5)
    read, source = read_exposed_inputs(tmp_path, {}, listed[::-1])
    assert source == INPUTS and list(read) == listed[::-1]
    for s in listed:
        np.testing.assert_allclose(read[s], inputs[np.flatnonzero(sample_index == s)[0]], rtol=1e-6)
    shown = describe_inputs(read)
    assert set(shown) == set(listed) and all("values" in v and "thumb" not in v for v in shown.values())


def test_a_folder_without_the_file_reads_the_digits_it_was_drawn_from(tmp_path):
    results = {"dataset": {"name": "digits"}, "config": {"dataset": "digits"}, "provenance": {"sha256": {}}}
    read, source = read_exposed_inputs(tmp_path, results, [5, 1700])
    np.testing.assert_array_equal(np.stack([read[5], read[1700]]), load_digits().features()[[5, 1700]])
    assert source.startswith("digits")
    own = {**results, "dataset": {"name": "own-files"}}  # the auditor's candidates: their index is no row
    assert read_exposed_inputs(tmp_path, own, [5]) is None


def test_a_changed_dataset_file_is_not_read(tmp_path):
    data = tmp_path / "data.npz"
    np.savez(data, x=np.zeros((4, 8, 8, 1), np.uint8), y=np.zeros(4, np.int64))
    recorded = {"data": {"path": str(data), "sha256": "0" * 64}}
    results = {"dataset": {"name": "data"}, "config": {"dataset": "npz"}, "provenance": {"sha256": recorded}}
    assert read_exposed_inputs(tmp_path, results, [0]) is None


def test_an_older_folder_is_counted_from_its_arrays_and_says_so(tmp_path):
    rng = np.random.default_rng(3)
    is_member = np.r_[np.ones(150, bool), np.zeros(150, bool)]
    scores = {"a": rng.normal(size=300) + 3 * is_member, "b": rng.normal(size=300)}
    np.savez(tmp_path / "arrays.npz", sample_index=np.arange(300), is_member=is_member,
             **{f"{n}/scores": s for n, s in scores.items()})  # fmt: skip
    results = {"attacks": {"a": {}, "b": {}}, "dataset": {"name": "own-files"}, "config": {}}
    shown = exposed_context(results, tmp_path)
    rows, summary = record_rows(np.arange(300), is_member, scores)
    assert shown["from_arrays"] is True and shown["inputs_from"] is None
    assert shown["members_flagged"] == summary["members_flagged"] and shown["members_flagged"]["a"]["0.1"] > 100
    assert [r["sample_index"] for r in shown["top"]] == [r["sample_index"] for r in rows if r["is_member"]][:10]
    assert all(r["input"] is None for r in shown["top"])
    assert exposed_context(results, tmp_path / "empty") is None


def test_an_audit_keeps_its_most_exposed_members_inputs_and_draws_them(tmp_path):
    import json

    from labelleak.pipeline import make_config, run_audit

    out = tmp_path / "out"
    cfg = make_config(attacks=["gap"], train_size=60, eval_size=60, shadow_size=60, epochs=2, n_boot=50,
                      out=str(out), cache_dir=str(tmp_path / "c"), progress=False)  # fmt: skip
    run_audit(cfg)
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    listed = [r["sample_index"] for r in rows if r["is_member"]][:10]
    with np.load(out / INPUTS) as data:
        assert data["sample_index"].tolist() == listed  # only the listed members, nothing else of the data
        np.testing.assert_array_equal(data["x"], load_digits().features()[listed])  # the candidates as queried
    page = (out / "report.html").read_text()
    assert page.count('<img class="thumb" src="data:image/png;base64,') == 10
    assert f'alt="member {listed[0]}, input 1x8x8"' in page and f"Inputs read from {INPUTS}" in page
