"""The PyTorch engine: the separator network on CPU or CUDA behind the `Engine` interface.

Windows arrive as numpy arrays in host memory and masks leave as such (`Engine`); on CUDA this
engine copies them to the GPU and back around the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from clipsep_rt.errors import OptionError
from clipsep_rt.model.device import resolve_device, resolve_precision
from clipsep_rt.model.separator import CLIPSepSeparator


@dataclass(frozen=True)
class HeadVectors:
    """The torch engine's prepared queries: one (C,) inner-product vector per output row."""

    vectors: torch.Tensor  # (rows, C) float32 on the engine's torch device

    @property
    def rows(self) -> int:
        return self.vectors.shape[0]


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class TorchEngine:
    """PyTorch on CPU or CUDA: the U-Net channels-last in fp32, bf16 or fp16; heads in fp32.

    On CUDA the U-Net is replayed from a CUDA graph captured once per input shape (the
    window shape is fixed, so a file needs one or two graphs); `compile` runs the U-Net
    through torch.compile (slow first call, then faster kernels).
    """

    def __init__(
        self,
        model: CLIPSepSeparator,
        device: str = "cpu",
        precision: str = "auto",
        compile: bool = False,
        cuda_graphs: bool | None = None,
    ):
        self.torch_device = resolve_device(device)
        self.device = str(self.torch_device)  # "cpu" or "cuda:N"
        self.precision = resolve_precision(precision, self.torch_device)
        self.dtype = _DTYPES[self.precision]
        self.model = model.eval().to(self.torch_device)
        self.model.unet.to(dtype=self.dtype, memory_format=torch.channels_last)
        self._unet = torch.compile(self.model.unet) if compile else self.model.unet
        self.cuda_graphs = self.torch_device.type == "cuda" if cuda_graphs is None else cuda_graphs
        if self.cuda_graphs and self.torch_device.type != "cuda":
            raise OptionError("cuda_graphs", "CUDA graphs need device cuda")
        self._graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def _features(self, log_mag: torch.Tensor) -> torch.Tensor:
        """(B, 1, F, T) in the engine's dtype, channels-last -> (B, C, F, T), valid until the next call."""
        if not self.cuda_graphs:
            return self._unet(log_mag)
        shape = tuple(log_mag.shape)
        if shape not in self._graphs:
            static_input = log_mag.clone()
            side = torch.cuda.Stream(self.torch_device)
            side.wait_stream(torch.cuda.current_stream(self.torch_device))
            with torch.cuda.stream(side):
                for _ in range(3):  # warm-up outside the graph, as torch.cuda.graph requires
                    self._unet(static_input)
            torch.cuda.current_stream(self.torch_device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_output = self._unet(static_input)
            self._graphs[shape] = (graph, static_input, static_output)
        graph, static_input, static_output = self._graphs[shape]
        static_input.copy_(log_mag)
        graph.replay()
        return static_output

    @torch.inference_mode()
    def prepare_queries(self, embeddings: np.ndarray, noise_heads: bool) -> HeadVectors:
        """(Q, D) embeddings -> the (Q * (1 + H), C) head vectors, computed once, in fp32."""
        heads = self.model.heads
        embeddings = torch.as_tensor(np.asarray(embeddings, dtype=np.float32), device=self.torch_device)
        vectors = heads.query_vectors(embeddings)[:, None]  # (Q, 1, C)
        if noise_heads:
            vectors = torch.cat([vectors, heads.noise_vectors(embeddings)], dim=1)
        return HeadVectors(vectors.flatten(0, 1))

    @torch.inference_mode()
    def probabilities(self, log_mag: np.ndarray, queries: HeadVectors) -> np.ndarray:
        """(B, 1, F, T) float32 -> (B, rows, F, T) float32 sigmoid masks, numpy in host memory."""
        x = torch.from_numpy(np.ascontiguousarray(log_mag, dtype=np.float32))
        x = x.to(self.torch_device, self.dtype).contiguous(memory_format=torch.channels_last)
        features = self._features(x).float()
        return torch.sigmoid(self.model.heads.logits(features, queries.vectors)).cpu().numpy()
