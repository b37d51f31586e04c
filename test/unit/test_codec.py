"""Pixel and VAE codecs, uint8 conversions and the reference-latent cache."""

import json

import numpy as np
import pytest
import torch

from worldfm_ros.errors import CheckpointError, ConfigError
from worldfm_ros.model.codec import PixelCodec, VAECodec, uint8_to_unit, unit_to_uint8

diffusers = pytest.importorskip("diffusers")

TINY_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4,
    "block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4,
    "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
    "sample_size": 32, "scaling_factor": 0.5, "shift_factor": 0.1,
}


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vae")
    diffusers.AutoencoderKL(**TINY_VAE).save_pretrained(path)
    return path


def _images(b=1, h=16, w=16, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_uint8_round_trip_is_exact():
    img = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    assert np.array_equal(unit_to_uint8(uint8_to_unit(img))[0], img)


def test_unit_to_uint8_truncates_as_released():
    x = torch.tensor([-2.0, -1.0, 0.0, 0.004, 1.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    # trunc(clamp(127.5 x + 128, 0, 255)): -2 -> 0, -1 -> 0 (0.5), 0 -> 128, 0.004 -> 128 (128.51), 1 -> 255
    assert unit_to_uint8(x)[0, 0, :, 0].tolist() == [0, 0, 128, 128, 255]


def test_uint8_to_unit_rejects_float_images():
    with pytest.raises(ConfigError, match="uint8"):
        uint8_to_unit(np.zeros((4, 4, 3), np.float32))


def test_pixel_codec_space_to_depth_shapes_and_round_trip():
    codec = PixelCodec(factor=2)
    x = _images(2, 8, 12)
    z = codec.encode(x)
    assert (codec.latent_channels, codec.downsample) == (12, 2)
    assert z.shape == (2, 12, 4, 6)
    assert torch.equal(codec.decode(z), x)


def test_pixel_codec_rejects_size_not_divisible_by_factor():
    with pytest.raises(ConfigError, match="divisible by 4"):
        PixelCodec(4).encode(_images(1, 10, 12))


def test_vae_codec_reads_scaling_and_shift_from_config(vae_dir):
    codec = VAECodec.from_pretrained(vae_dir)
    assert (codec.scaling_factor, codec.shift_factor) == (0.5, 0.1)
    assert (codec.latent_channels, codec.downsample) == (4, 2)


def test_vae_codec_latents_are_scaled_shifted_posterior_mode(vae_dir):
    codec = VAECodec.from_pretrained(vae_dir)
    x = _images()
    z = codec.encode(x)
    mode = codec.vae.encode(x).latent_dist.mode()
    assert z.shape == (1, 4, 8, 8)
    assert torch.allclose(z, (mode - 0.1) * 0.5, atol=1e-6)


def test_vae_codec_decode_undoes_scale_and_shift(vae_dir):
    codec = VAECodec.from_pretrained(vae_dir)
    z = torch.randn(1, 4, 8, 8)
    expected = codec.vae.decode(z / 0.5 + 0.1).sample
    out = codec.decode(z)
    assert out.shape == (1, 3, 16, 16)
    assert torch.allclose(out, expected, atol=1e-6)


def test_vae_codec_posterior_sampling_follows_the_generator(vae_dir):
    codec = VAECodec.from_pretrained(vae_dir, sample_posterior=True)
    x = _images()
    a = codec.encode(x, torch.Generator().manual_seed(1))
    b = codec.encode(x, torch.Generator().manual_seed(1))
    c = codec.encode(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_vae_folder_without_config_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        VAECodec.from_pretrained(tmp_path)


def test_vae_folder_with_corrupt_weights_is_a_checkpoint_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL", **TINY_VAE}))
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match=str(tmp_path.name)):
        VAECodec.from_pretrained(tmp_path)


def test_reference_cache_hits_for_same_keyframe_and_image(vae_dir):
    codec = VAECodec.from_pretrained(vae_dir)
    x = _images()
    first, cached_first = codec.encode_reference(x, key=3)
    assert not cached_first
    second, cached_second = codec.encode_reference(x.clone(), key=3)
    assert cached_second and second is first


def test_reference_cache_misses_for_another_key():
    codec = PixelCodec()
    codec.encode_reference(_images(seed=0), key=3)
    out, cached = codec.encode_reference(_images(seed=1), key=4)
    assert not cached
    assert torch.equal(out, _images(seed=1))


def test_reference_cache_evicts_least_recently_used():
    codec = PixelCodec()
    codec.cache_size = 2
    for key in (0, 1, 2):
        codec.encode_reference(_images(seed=key), key=key)
    assert not codec.encode_reference(_images(seed=0), key=0)[1]
    assert codec.encode_reference(_images(seed=2), key=2)[1]
