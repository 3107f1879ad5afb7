"""A user's script over the public API, type-checked by
tests/python/test_package.py with mypy --strict and --disallow-any-expr:
every public name it touches must be typed without Any."""

from __future__ import annotations

import torch

import kestrel_mps_torch_ext as kmte


def describe(t: torch.Tensor) -> str:
    bridge: kmte.TorchMPSBridge = kmte.load_torch_mps_bridge()
    built: kmte.TorchVersion = bridge.built_for
    d: kmte.TensorDescriptor = bridge.resolve(t)
    many: list[kmte.TensorDescriptor] = bridge.resolve_many([t, t], [False, True])
    probe: kmte.MPSProbe = kmte.probe_mps()
    minors: list[str] = kmte.supported_torch_minors()
    parts = [
        f"torch {built.major}.{built.minor}.{built.patch}",
        f"buffer {d.buffer:#x} + {d.byte_offset}",
        f"shape {list(d.shape)} strides {list(d.strides)} nbytes {d.nbytes}",
        f"dtype {d.dtype[0]}/{d.dtype[1]}/{d.dtype[2]} contiguous {d.contiguous}",
        f"{len(many)} resolved, writable {many[1].writable}",
        f"mps usable {probe.usable}: {probe.detail}",
        f"minors {', '.join(minors)}; include {kmte.get_include()}; cmake {kmte.cmake_dir()}",
        f"api {kmte.get_api_pointer():#x} tag {bridge.torch_tag} path {bridge.path}",
        f"stream backend {bridge.has_mps_stream}",
    ]
    try:
        parts.append(f"stream {bridge.current_stream():#x}")
    except kmte.BridgeCallError as e:
        parts.append(f"no stream: {e.status_name}: {e.message}")
    return "\n".join(parts)


if __name__ == "__main__":
    print(describe(torch.arange(12.0).reshape(3, 4)[1:, ::2]))
