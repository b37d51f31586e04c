"""ONNX export of the DiT and the ONNX Runtime backend, checked against PyTorch."""

import json

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from worldfm_ros.backends.onnx_backend import CONFIG_KEY, export_onnx  # noqa: E402
from worldfm_ros.backends.registry import create_backend  # noqa: E402
from worldfm_ros.backends.tensorrt_backend import onnx_digest, onnx_input_shapes  # noqa: E402
from worldfm_ros.errors import BackendUnavailable, ConfigError  # noqa: E402
from worldfm_ros.model.config import DiTConfig  # noqa: E402
from worldfm_ros.model.dit import WorldFMDiT  # noqa: E402

from test_backends import SIZE, request, tiny_model  # noqa: E402


def test_a_batch_larger_than_the_graphs_runs_in_chunks_and_matches_one_by_one(onnx_file):
    backend = create_backend("onnxruntime", onnx_path=onnx_file, steps=2)  # exported for batch 1
    requests = [request(seed=seed) for seed in (1, 2, 3)]
    batch = backend.generate(requests)
    for req, out in zip(requests, batch):
        assert np.array_equal(out.rgb, backend.generate_one(req))


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def onnx_file(model, tmp_path_factory):
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "dit.onnx")


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (1, 12, SIZE // 2, SIZE // 2)
    return {"x_t": torch.randn(shape, generator=g), "t": torch.tensor([200.0]),
            "render": torch.randn(shape, generator=g), "reference": torch.randn(shape, generator=g)}


def test_exported_dit_matches_torch_within_1e4(model, onnx_file):
    inputs = _inputs()
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {k: v.numpy() for k, v in inputs.items()})
    with torch.no_grad():
        expected = model(**inputs).numpy()
    assert out.shape == expected.shape == (1, model.cfg.latent_channels * 2, SIZE // 2, SIZE // 2)
    assert np.abs(out - expected).max() < 1e-4


def test_exported_graph_carries_config_and_fixed_shapes(model, onnx_file):
    shapes, cfg = onnx_input_shapes(onnx_file)
    assert cfg == json.loads(json.dumps(model.cfg.to_dict()))
    assert shapes == {"x_t": (1, 12, 8, 8), "t": (1,), "render": (1, 12, 8, 8), "reference": (1, 12, 8, 8)}
    meta = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert CONFIG_KEY in meta.custom_metadata_map


def test_onnx_backend_frame_matches_torch_backend_frame(model, onnx_file):
    onnx_backend = create_backend("onnxruntime", onnx_path=onnx_file, steps=2)
    torch_backend = create_backend("torch", model=model, steps=2)
    for seed in (1, 2):
        a = onnx_backend.generate_one(request(seed=seed))
        b = torch_backend.generate_one(request(seed=seed))
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.fixture(scope="module")
def fp16_cache(model, tmp_path_factory):
    """A cache directory into which an fp16 backend has exported ``model`` once."""
    cache = tmp_path_factory.mktemp("cache")
    backend = create_backend("onnxruntime", model=model, dtype="fp16", cache_dir=cache)
    return cache, backend


def test_fp16_graph_frame_is_close_to_the_fp32_torch_frame(model, fp16_cache):
    _, fp16 = fp16_cache
    a = fp16.generate_one(request(seed=1))
    b = create_backend("torch", model=model).generate_one(request(seed=1))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 3


def test_onnx_backend_exports_once_into_its_cache(model, fp16_cache):
    cache, first = fp16_cache
    stamp = first.onnx_path.stat().st_mtime_ns
    second = create_backend("onnxruntime", model=model, dtype="fp16", cache_dir=cache)
    assert second.onnx_path == first.onnx_path and second.onnx_path.stat().st_mtime_ns == stamp
    assert first.onnx_path.parent == cache / "onnx"


def test_mask_channel_model_exports_with_a_mask_input(tmp_path):
    torch.manual_seed(0)
    model = WorldFMDiT(DiTConfig.tiny(latent_channels=12, use_mask_channel=True)).eval()
    path = export_onnx(model, tmp_path / "mask.onnx")
    shapes, _ = onnx_input_shapes(path)
    assert shapes["mask"] == (1, 1, 8, 8)
    frame = create_backend("onnxruntime", onnx_path=path).generate_one(request())
    assert frame.shape == (SIZE, SIZE, 3)


def test_camera_encoded_model_is_not_exported(tmp_path):
    model = WorldFMDiT(DiTConfig.tiny(latent_channels=12, camera_encoding="prope"))
    with pytest.raises(ConfigError, match="torch backend only"):
        export_onnx(model, tmp_path / "cam.onnx")


def test_missing_execution_provider_is_unavailable(onnx_file):
    with pytest.raises(BackendUnavailable, match="NoSuchExecutionProvider"):
        create_backend("onnxruntime", onnx_path=onnx_file, providers=["NoSuchExecutionProvider"])


def test_onnx_path_without_metadata_is_unavailable(tmp_path):
    plain = torch.nn.Linear(2, 2)
    path = tmp_path / "plain.onnx"
    torch.onnx.export(plain, (torch.zeros(1, 2),), str(path), dynamo=True, verbose=False)
    with pytest.raises(BackendUnavailable, match="metadata"):
        create_backend("onnxruntime", onnx_path=path)


def test_onnx_digest_follows_file_content(onnx_file, tmp_path):
    import onnx

    graph = onnx.load(str(onnx_file))
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(graph, str(first))
    onnx.save(graph, str(second))
    assert onnx_digest(first) == onnx_digest(second)
    weights = graph.graph.initializer[0]
    weights.raw_data = bytes(len(weights.raw_data))
    onnx.save(graph, str(second))
    assert onnx_digest(first) != onnx_digest(second)
