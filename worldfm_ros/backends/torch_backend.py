"""PyTorch frame backend: the DiT in eager mode, optionally ``torch.compile``d and/or CUDA-graph captured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from worldfm_ros.backends.config import check_correction, model_profile
from worldfm_ros.backends.frame_model import (
    PipelineBackend,
    backend_codec,
    build_sampler_and_noise,
    load_frame_model,
    model_pipeline,
    parse_dtype,
)
from worldfm_ros.devices import parse_device
from worldfm_ros.errors import ConfigError
from worldfm_ros.model.codec import Codec
from worldfm_ros.model.dit import CameraInputs


class TorchDenoiser:
    """Calls a ``WorldFMDiT`` on float32 latents, in the model's dtype, returning float32.

    compile: wrap the model in ``torch.compile``. cuda_graphs: capture one forward in a
    ``torch.cuda.CUDAGraph`` on the first call (after warm-up on a side stream) and replay it
    with inputs copied into static buffers; recaptured if the input shapes change.
    """

    def __init__(self, model: torch.nn.Module, compile: bool = False, cuda_graphs: bool = False) -> None:
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        if cuda_graphs and self.device.type != "cuda":
            raise ConfigError(f"cuda_graphs: needs the model on a CUDA device, it is on {self.device}")
        self.model = model.eval().requires_grad_(False)
        self._forward = torch.compile(self.model) if compile else self.model
        self.cuda_graphs = cuda_graphs
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static_in: dict[str, torch.Tensor] = {}
        self._static_out: torch.Tensor | None = None
        self._image_size: tuple[int, int] | None = None
        self._captured_image_size: tuple[int, int] | None = None

    def _inputs(self, x_t: torch.Tensor, t: int, render: torch.Tensor, reference: torch.Tensor,
                mask: torch.Tensor | None, cameras: Any) -> dict[str, torch.Tensor]:
        inputs = {
            "x_t": x_t.to(self.device, self.dtype),
            "t": torch.full((x_t.shape[0],), float(t), device=self.device, dtype=torch.float32),
            "render": render.to(self.device, self.dtype),
            "reference": reference.to(self.device, self.dtype),
        }
        if mask is not None:
            inputs["mask"] = mask.to(self.device, self.dtype)
        if cameras is not None:
            self._image_size = cameras.image_size
            inputs["viewmats"] = cameras.viewmats.to(self.device)
            if cameras.Ks is not None:
                inputs["Ks"] = cameras.Ks.to(self.device)
        return inputs

    def _run(self, x_t: torch.Tensor, t: torch.Tensor, render: torch.Tensor, reference: torch.Tensor,
             mask: torch.Tensor | None = None, viewmats: torch.Tensor | None = None,
             Ks: torch.Tensor | None = None) -> torch.Tensor:
        cameras = None if viewmats is None else CameraInputs(viewmats, Ks, self._image_size)
        return self._forward(x_t, t, render, reference, mask=mask, cameras=cameras)

    def _capture(self, inputs: dict[str, torch.Tensor]) -> None:
        self._captured_image_size = self._image_size
        self._static_in = {name: value.clone() for name, value in inputs.items()}
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        # Warm-up outside the graph lets lazy initialisation (cuBLAS handles, compile) happen first.
        with torch.cuda.stream(side):
            for _ in range(3):
                self._run(**self._static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._static_out = self._run(**self._static_in)

    @torch.inference_mode()
    def __call__(self, x_t: torch.Tensor, t: int, render: torch.Tensor, reference: torch.Tensor,
                 mask: torch.Tensor | None, cameras: Any = None) -> torch.Tensor:
        inputs = self._inputs(x_t, t, render, reference, mask, cameras)
        if not self.cuda_graphs:
            return self._run(**inputs).float()  # (B, out_ch, h, w)
        # The cameras' image_size is baked into the graph along with the shapes.
        same_shapes = (self._graph is not None and inputs.keys() == self._static_in.keys()
                       and self._image_size == self._captured_image_size
                       and all(inputs[k].shape == self._static_in[k].shape for k in inputs))
        if not same_shapes:
            self._capture(inputs)
        for name, value in inputs.items():
            self._static_in[name].copy_(value)
        self._graph.replay()
        return self._static_out.float().clone()  # the static output is overwritten by the next replay


class TorchBackend(PipelineBackend):
    """The frame model run by PyTorch on CPU or CUDA.

    model_path: ``.safetensors`` (our format) or an official ``worldfm_{1,2}-step.pth``;
    or ``model``: an already built ``WorldFMDiT`` (moved and cast in place).
    vae_path: diffusers VAE folder (required for 4-channel latent models; without it a pixel
    codec is used) or ``codec``: a built Codec.
    device: 'cpu' | 'cuda[:N]'. dtype: 'fp32' | 'fp16' | 'bf16' for the DiT and the VAE.
    sampler: 'distilled' (steps 1 or 2, or explicit ``timesteps``) or 'ddim' (steps network
    calls). seed / reuse_noise: see ``NoiseSource``. sample_posterior: sample the VAE
    posterior as released instead of taking its mode. profile: 'default' or 'release'
    (``worldfm_ros.frame.profiles``: the released pipeline's posterior samples, fresh noise every
    frame, no reference cache, its draw order). compile / cuda_graphs: see TorchDenoiser.
    """

    name = "torch"

    def __init__(self, model_path: str | Path | None = None, vae_path: str | Path | None = None, *,
                 model: torch.nn.Module | None = None, codec: Codec | None = None, device: str = "cpu",
                 dtype: str = "fp32", sampler: str = "distilled", steps: int = 2,
                 timesteps: list[int] | None = None, seed: int = 0, reuse_noise: bool = False,
                 sample_posterior: bool = False, profile: str = "default", compile: bool = False,
                 cuda_graphs: bool = False,
                 correction: str = "holes") -> None:
        self.correction = check_correction(correction)
        resolved = model_profile(profile)  # the one resolution of the name
        torch_device, torch_dtype = parse_device(device), parse_dtype(dtype)
        if (model is None) == (model_path is None):
            raise ConfigError("torch backend: give exactly one of model_path or model")
        if model is None:
            model = load_frame_model(model_path, torch_device, torch_dtype)
        else:
            model = model.to(device=torch_device, dtype=torch_dtype).eval()
        cfg = model.cfg
        if codec is None:
            codec = backend_codec(cfg.latent_channels, vae_path, torch_device, torch_dtype, sample_posterior, resolved)
        sampler_obj, noise = build_sampler_and_noise(sampler, steps, timesteps, seed, reuse_noise, resolved)
        self.model = model
        self.pipeline = model_pipeline(TorchDenoiser(model, compile, cuda_graphs), codec, sampler_obj, noise,
                                       torch_device, cfg.to_dict(), cfg.camera_encoding != "none", resolved)
