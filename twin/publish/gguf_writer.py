"""The GGUF file itself: which GGML type each tensor gets, and the streaming, atomic writer.

Written with the ``gguf`` package (the writer llama.cpp itself uses). ``f16`` (2-D weights f16,
norms and biases f32) or ``q8_0`` (2-D weights with 32-divisible rows in Q8_0 via ``gguf.quants``,
the rest as f16/f32), or ``f32`` (everything as trained on CPU: what compares token for token with
twin's own engine). Tensors are streamed: every tensor's name, shape and type is written first, then
each tensor is loaded, converted and written in turn, so a 7B export never holds the whole model in
memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTTYPES = ("f16", "q8_0", "f32")


@dataclass
class GgufTensor:
    """One tensor to write: GGUF name, torch-order shape, GGML type, and how to load its data."""

    name: str
    shape: list[int]
    qtype: Any
    load: Callable[[], Any]


def out_type(shape: list[int], outtype: str) -> Any:
    """The GGML type a tensor of ``shape`` is stored in for ``--type outtype``."""
    from gguf import GGMLQuantizationType as Q

    if len(shape) < 2:
        return Q.F32  # norms and biases: tiny, precision-sensitive
    if outtype == "q8_0" and shape[-1] % 32 == 0:
        return Q.Q8_0
    return Q.F32 if outtype == "f32" else Q.F16


def write_gguf(path: Path, arch: str, add_kv: Callable[[Any], None], tensors: list[GgufTensor]) -> None:
    """Stream ``tensors`` into ``path`` (atomically: a temp file renamed when complete)."""
    import numpy as np
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFWriter
    from gguf.quants import quant_shape_to_byte_shape, quantize
    from tqdm.auto import tqdm

    from twin.fileio import replace_path

    tmp = path.with_name(f".{path.name}.tmp")
    writer = GGUFWriter(tmp, arch)
    try:
        add_kv(writer)
        for t in tensors:
            if t.qtype == Q.Q8_0:
                bshape = quant_shape_to_byte_shape(t.shape, Q.Q8_0)
                writer.add_tensor_info(
                    t.name, bshape, np.dtype(np.uint8), int(np.prod(bshape)), raw_dtype=Q.Q8_0
                )
            else:
                dt = np.dtype(np.float32 if t.qtype == Q.F32 else np.float16)
                writer.add_tensor_info(t.name, t.shape, dt, int(np.prod(t.shape)) * dt.itemsize)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        bar = tqdm(tensors, desc=f"writing {path.name}", unit="tensor", delay=1.0)  # shown after 1 s
        for t in bar:
            writer.write_tensor_data(quantize(np.ascontiguousarray(t.load()), t.qtype))
        writer.close()
        replace_path(tmp, path)  # 0600, like every file twin writes (twin/fileio.py)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
