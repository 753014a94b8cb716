"""Memory meters for chapter 6: what back-propagation keeps alive, and NoProp does not."""

from __future__ import annotations

import weakref

import torch

__all__ = ["SavedTensorMeter"]

Tensor = torch.Tensor


class SavedTensorMeter:
    """Peak bytes of the tensors saved for backward that are alive at the same time.

    Inside `with meter:` every tensor autograd saves goes through torch.autograd.graph.saved_tensors_hooks;
    a storage is counted once however many graphs hold it, from when it is saved until the last graph
    holding it is freed (after its backward). `meter.peak` is the maximum of the live total, in bytes.
    """

    def __init__(self) -> None:
        self.live: dict[int, list[int]] = {}  # storage address -> [holders, bytes]
        self.current = self.peak = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, tensor: Tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        entry = self.live.setdefault(key, [0, storage.nbytes()])
        if entry[0] == 0:
            self.current += entry[1]
            self.peak = max(self.peak, self.current)
        entry[0] += 1
        holder = _Held(tensor)
        weakref.finalize(holder, self._release, key)
        return holder

    def _unpack(self, holder: _Held) -> Tensor:
        return holder.tensor

    def _release(self, key: int) -> None:
        entry = self.live[key]
        entry[0] -= 1
        if entry[0] == 0:
            self.current -= entry[1]
            del self.live[key]

    def __enter__(self) -> SavedTensorMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


class _Held:
    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor
