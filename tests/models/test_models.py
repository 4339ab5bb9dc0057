import pytest
import torch

from labelleak.errors import DataFileError, InvalidInputError, UnknownNameError
from labelleak.models import (
    CNN_CONFIGS,
    ModelSpec,
    ModelStore,
    TrainSettings,
    accuracy,
    build_model,
    init_model,
    load_model,
    predict_logits,
    save_model,
    train_model,
)


@pytest.mark.parametrize("arch", sorted(CNN_CONFIGS))
def test_cnn_family_builds_and_runs(arch):
    model = build_model(ModelSpec(arch, (3, 16, 16), 7, width=0.0625))
    out = model.eval()(torch.zeros(2, 3, 16, 16))
    assert out.shape == (2, 7)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    expected = [max(1, round(c * 0.0625)) for c in CNN_CONFIGS[arch] if c != "M"]
    assert [c.out_channels for c in convs] == expected


def test_cnn7_full_width_matches_paper_config():
    model = build_model(ModelSpec("cnn7", (3, 32, 32), 10))
    convs = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [64, 256, 512, 512]
    assert model.classifier[0].out_features == 256


def test_build_errors():
    with pytest.raises(UnknownNameError, match="unknown architecture 'resnet'"):
        build_model(ModelSpec("resnet", (3, 32, 32), 10))
    with pytest.raises(
        InvalidInputError, match="needs images of at least 16x16, got 8x8; architectures that fit: cnn2, mlp$"
    ):
        build_model(ModelSpec("cnn7", (1, 8, 8), 10))
    with pytest.raises(
        InvalidInputError, match=r"needs image input \(C, H, W\), got shape \(64,\); mlp is the architecture"
    ):
        build_model(ModelSpec("cnn3", (64,), 10))
    with pytest.raises(InvalidInputError, match="got 3x3; architectures that fit: mlp$"):
        build_model(ModelSpec("cnn2", (1, 3, 3), 10))


def test_training_memorises_small_data_and_is_seeded(blobs):
    x, y = blobs
    spec = ModelSpec("mlp", (6,), 3, hidden=(32,))
    settings = TrainSettings(epochs=60, batch_size=16, lr=1e-2, seed=5)
    a = train_model(init_model(lambda: build_model(spec), 5), x, y, settings, n_classes=3, progress=False)
    b = train_model(init_model(lambda: build_model(spec), 5), x, y, settings, n_classes=3, progress=False)
    assert accuracy(a, x, y) == 1.0
    assert torch.equal(predict_logits(a, x), predict_logits(b, x))


def test_training_rejects_bad_labels(blobs):
    x, y = blobs
    model = build_model(ModelSpec("mlp", (6,), 3))
    with pytest.raises(InvalidInputError, match="labels must lie in 0..2"):
        train_model(model, x, y + 1, TrainSettings(epochs=1), n_classes=3, progress=False)


def test_save_load_roundtrip_and_corruption(tmp_path, blobs):
    x, _ = blobs
    spec = ModelSpec("cnn3", (3, 16, 16), 4, width=0.125)
    model = build_model(spec).eval()
    save_model(tmp_path / "m", model, spec, {"note": "x"})
    loaded, spec2, meta = load_model(tmp_path / "m")
    xi = torch.rand(3, 3, 16, 16)
    assert spec2 == spec and meta == {"note": "x"}
    assert torch.equal(model(xi), loaded(xi))
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(DataFileError, match="corrupt or mismatched weights"):
        load_model(tmp_path / "m")
    with pytest.raises(DataFileError, match="expected model.safetensors"):
        load_model(tmp_path / "nothing")
    assert ModelStore(tmp_path).get("m") is None  # a corrupt cache entry counts as missing


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_learning_rate_schedule(blobs, monkeypatch, schedule):
    seen = []

    class RecordingAdam(torch.optim.Adam):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    x, y = blobs  # 90 samples, batch 30: 3 steps per epoch
    settings = TrainSettings(epochs=4, batch_size=30, lr=0.1, seed=0, lr_schedule=schedule)
    train_model(build_model(ModelSpec("mlp", (6,), 3, hidden=(8,))), x, y, settings, n_classes=3, progress=False)
    per_epoch = [seen[i] for i in range(0, 12, 3)]
    assert len(seen) == 12 and all(seen[i] == seen[i - i % 3] for i in range(12))  # constant within an epoch
    if schedule == "constant":
        assert per_epoch == [0.1] * 4
    else:  # lr * (1 + cos(pi * e / E)) / 2 for epochs e = 0..E-1
        assert per_epoch == pytest.approx([0.1, 0.0853553, 0.05, 0.0146447], rel=1e-5)


def test_unknown_learning_rate_schedule_is_rejected(blobs):
    x, y = blobs
    with pytest.raises(InvalidInputError, match="lr_schedule must be constant or cosine, got 'step'"):
        train_model(
            build_model(ModelSpec("mlp", (6,), 3)),
            x,
            y,
            TrainSettings(epochs=1, lr_schedule="step"),
            n_classes=3,
            progress=False,
        )
