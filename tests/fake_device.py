"""A simulated accelerator for tests: a GPU's device rules without a GPU, real numbers from the CPU.

`install()` (or `with simulated_accelerator():`) makes `ddpm_nb.config.pick_device()` answer torch's
`meta` device, so `nb.setup()`'s cfg.device, `recipes.load`, `train` and the command line all put their
models there, and makes every tensor put there an `OnDevice`: a CPU tensor that says it lives on `meta`.
Every operation on such tensors obeys the rules a CUDA kernel obeys, then runs on the CPU copies, so a
chapter computes exactly what it computes on the CPU and runs to its end:

- one device per operation (a CPU 0-dim tensor passes as a scalar, CPU indices may index a device
  tensor, copies and `.to` cross), else "Expected all tensors to be on the same device, but found at
  least two devices, meta and cpu!";
- a generator on the device it draws for, else "Expected a 'meta' device type for generator but found
  'cpu'"; `torch.Generator(device=...)` makes a device generator;
- `.numpy()` (so numpy and matplotlib) refuses a device tensor; `.item()`, `float()`, `.tolist()`,
  `.cpu()` read it, as on CUDA.

Plain `meta` tensors (no data) do neither of the last two (they take a CPU generator, and every read
fails, so a cell stops at its first printed or plotted result). Each violation raises `DeviceError`,
also kept in `ERRORS` with where it happened (a cell that catches it is still caught).

Speed: only calls that name a device (factories, `.to`, generators) are wrapped, so CPU-only code runs
at full speed; a module on the device runs op by op (each operation checked) on its first call of each
kind, and afterwards, without gradients, checks its inputs and runs on the CPU copies of its weights.
`PATCH` is what a notebook test runs in its kernel to turn the simulation on there.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import traceback
import weakref
from pathlib import Path

import torch

DEVICE = torch.device("meta")
CPU = torch.device("cpu")
ERRORS: list[str] = []  # every DeviceError raised while installed, with the code that raised it

_aten = torch.ops.aten
_CROSSING = {_aten._to_copy.default, _aten.copy_.default}  # these take a tensor from another device
_INDEX = {_aten.index.Tensor, _aten.index_put_.default, _aten.index_put.default,
          _aten._index_put_impl_.default}
FACTORIES = ("randn", "rand", "randint", "randperm", "normal", "zeros", "ones", "full", "empty", "arange",
             "linspace", "logspace", "eye", "tensor", "as_tensor", "zeros_like", "ones_like", "full_like",
             "empty_like", "randn_like", "rand_like", "randint_like", "multinomial", "bernoulli", "poisson")
RANDOM_METHODS = ("normal_", "uniform_", "random_", "bernoulli_", "exponential_", "geometric_",
                  "log_normal_", "cauchy_", "multinomial", "bernoulli")


class DeviceError(RuntimeError):
    """A tensor on a device its operation does not accept (raised where CUDA raises)."""


def _fail(message: str):
    ERRORS.append(message + "\n" + "".join(traceback.format_stack(limit=14)[:-2]))
    raise DeviceError(message)


def tree_map(f, x):
    """f on every tensor of nested tuples, lists and dicts (what an operation takes and returns)."""
    if isinstance(x, torch.Tensor):
        return f(x)
    if isinstance(x, (list, tuple)):
        return type(x)(tree_map(f, a) for a in x)
    if isinstance(x, dict):
        return {k: tree_map(f, v) for k, v in x.items()}
    return x


def tensors(x):
    """The tensors of nested tuples, lists and dicts, in order."""
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for a in x:
            yield from tensors(a)
    elif isinstance(x, dict):
        for a in x.values():
            yield from tensors(a)


class OnDevice(torch.Tensor):
    """A CPU tensor (`.elem`) that says it lives on the simulated device."""

    elem: torch.Tensor
    __torch_function__ = torch._C._disabled_torch_function_impl

    @staticmethod
    def __new__(cls, elem: torch.Tensor, requires_grad: bool = False):
        if isinstance(elem, OnDevice) or elem.device != CPU:
            raise TypeError(f"OnDevice wraps a CPU tensor, got one on {elem.device}")
        r = torch.Tensor._make_wrapper_subclass(
            cls, elem.size(), strides=elem.stride(), storage_offset=elem.storage_offset(), dtype=elem.dtype,
            layout=elem.layout, device=DEVICE, requires_grad=requires_grad)
        r.elem = elem
        return r

    @property
    def is_meta(self) -> bool:  # torch skips real meta tensors (load_state_dict, __format__): not these
        return False

    def __repr__(self, *, tensor_contents=None) -> str:
        return repr(self.elem)[:-1] + f", device='{DEVICE}')"

    def __format__(self, spec: str) -> str:
        return self.item().__format__(spec) if self.dim() == 0 else repr(self)

    def tolist(self):
        return self.elem.tolist()

    def numpy(self, *, force: bool = False):
        _fail(f"can't convert {DEVICE} device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
              "to host memory first.")

    def __array__(self, dtype=None, copy=None):
        self.numpy()

    def __reduce_ex__(self, proto):  # torch.save writes the CPU copy
        return self.elem.__reduce_ex__(proto)

    def __deepcopy__(self, memo):
        out = OnDevice(self.elem.clone(), requires_grad=self.requires_grad)
        if getattr(self, "_is_param", False):
            out._is_param = True  # how nn.Parameter marks a tensor subclass
        memo[id(self)] = out
        return out

    def untyped_storage(self):  # memory meters count the CPU copy's bytes
        return self.elem.untyped_storage()

    def data_ptr(self) -> int:
        return self.elem.data_ptr()

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        plain: list[torch.Tensor] = []  # the inputs that are not on the simulated device
        mine: dict[int, OnDevice] = {}  # id(CPU copy) -> its OnDevice input
        args = _unwrap_all(args, plain, mine)
        kwargs = dict(zip(kwargs, _unwrap_all(kwargs.values(), plain, mine), strict=True)) if kwargs else {}
        if plain and func not in _CROSSING:
            _check_devices(func, args, plain)
        target = kwargs.get("device")
        if target is not None:
            target = torch.device(target)
            if target == DEVICE:
                kwargs["device"] = CPU
        out = func(*args, **kwargs)
        if target is not None and target != DEVICE:
            return out  # .cpu(), .to("cpu"), new_zeros(..., device="cpu")
        return _wrap_out(out, plain, mine)


def _unwrap_all(seq, plain: list, mine: dict) -> list:
    """seq with each OnDevice replaced by its CPU copy (noted in `mine`); other tensors go to `plain`."""
    out = []
    for a in seq:
        if isinstance(a, OnDevice):
            mine[id(a.elem)] = a
            a = a.elem
        elif isinstance(a, torch.Tensor):
            if a.device == DEVICE:
                raise TypeError("a plain meta tensor (no data) met the simulated device")
            plain.append(a)
        elif isinstance(a, (list, tuple)):
            a = type(a)(_unwrap_all(a, plain, mine))
        out.append(a)
    return out


def _wrap_out(out, plain: list, mine: dict):
    """Results on the simulated device; an in-place operation returns its own input."""
    if isinstance(out, torch.Tensor):
        if id(out) in mine:
            return mine[id(out)]
        return out if any(out is p for p in plain) else OnDevice(out)
    if isinstance(out, (list, tuple)):
        return type(out)(_wrap_out(o, plain, mine) for o in out)
    if isinstance(out, dict):
        return {k: _wrap_out(v, plain, mine) for k, v in out.items()}
    return out


def _plain(x) -> bool:
    return isinstance(x, torch.Tensor) and not isinstance(x, OnDevice)


def _unwrap(x):
    return x.elem if isinstance(x, OnDevice) else x


def _check_devices(func, args, plain: list) -> None:
    """CUDA's rule: one device per operation, but a CPU 0-dim tensor is a scalar and CPU indices index.
    func: the aten operation, or the module whose inputs these are."""
    if func in _INDEX:
        if any(args[0] is p for p in plain):
            _fail(f"indices should be either on cpu or on the same device as the indexed tensor (cpu) "
                  f"[{func}]")
        indices = args[1] if len(args) > 1 else []
        plain = [p for p in plain if not any(p is i for i in indices)]  # the values put must match
    for a in plain:
        if not (a.device == CPU and a.dim() == 0):
            _fail(f"Expected all tensors to be on the same device, but found at least two devices, "
                  f"{DEVICE} and {a.device}! [{func}]")


def _check_generator(kwargs, out_device: torch.device) -> None:
    gen = kwargs.get("generator")
    if gen is not None and gen.device.type != out_device.type:
        _fail(f"Expected a '{out_device.type}' device type for generator but found '{gen.device.type}'")


class _ToDevice(torch.autograd.Function):
    """x.to(device) of a CPU tensor that requires grad: the copy stays on the autograd graph."""

    @staticmethod
    def forward(ctx, x):
        return OnDevice(x.detach().clone())

    @staticmethod
    def backward(ctx, grad):
        return _unwrap(grad)


def _factory(fn):
    """torch.randn, torch.zeros, ...: device=DEVICE makes it on the CPU and wraps it; generators checked."""

    @functools.wraps(fn)
    def make(*args, **kwargs):
        first = next(tensors(args), None)
        asked = None if kwargs.get("device") is None else torch.device(kwargs["device"])
        _check_generator(kwargs, asked or (first.device if first is not None else CPU))
        if asked != DEVICE:
            return fn(*args, **kwargs)
        kwargs["device"] = CPU
        out = fn(*args, **kwargs)
        copy = fn.__name__ == "as_tensor"  # it may share memory with its (numpy) argument
        return tree_map(lambda o: OnDevice(o.clone() if copy else o) if _plain(o) else o, out)

    return make


def _random_method(fn):
    """x.normal_(generator=...), ...: the generator must be on x's device."""

    @functools.wraps(fn)
    def draw(self, *args, **kwargs):
        _check_generator(kwargs, self.device)
        return fn(self, *args, **kwargs)

    return draw


def _to_method(fn):
    """x.to(device | dtype | tensor, ...): to the simulated device, a CPU copy wrapped as OnDevice."""

    @functools.wraps(fn)
    def to(self, *args, **kwargs):
        copy = kwargs.pop("copy", False)
        device, dtype, non_blocking, _ = torch._C._nn._parse_to(*args, **kwargs)
        if device != DEVICE:
            return fn(self, *args, copy=copy, **kwargs)
        dtype = self.dtype if dtype is None else dtype
        if isinstance(self, OnDevice):
            return self if dtype == self.dtype and not copy else fn(self, dtype, copy=copy)
        x = fn(self, CPU, dtype)
        if x.requires_grad:
            return _ToDevice.apply(x)
        return OnDevice(x.clone() if x is self else x)  # a copy, as a real device makes

    return to


_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # module -> the calls checked op by op
_SLOTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # module -> where its tensors are held
_DEPTH = [0]  # > 0 inside a module call on the simulated device


def _kind(x):
    return (x.dtype, x.dim(), x.requires_grad) if isinstance(x, torch.Tensor) else type(x).__name__


def _slots(module) -> list:
    """The (dict, name) of every parameter and buffer of module and its submodules."""
    if module not in _SLOTS:
        _SLOTS[module] = [(d, name) for m in module.modules() for d in (m._parameters, m._buffers)
                          for name, t in d.items() if t is not None]
    return _SLOTS[module]


def _module_call(real_call):
    """module(...) for a module on the simulated device: its first call of each kind (argument dtypes and
    ranks, grad mode) runs op by op, checked; later calls without grad check their inputs, then run the
    module with the CPU copies of its weights swapped in: the same numbers, at CPU speed."""

    @functools.wraps(real_call)
    def call(self, *args, **kwargs):
        if _DEPTH[0] or not isinstance(next(self.parameters(), None), OnDevice):
            return real_call(self, *args, **kwargs)
        slots = _slots(self)
        held = [d[name] for d, name in slots]
        key = (tuple(map(_kind, args)), tuple((k, _kind(v)) for k, v in kwargs.items()),
               torch.is_grad_enabled())
        seen = _CHECKED.setdefault(self, set())
        slow = key not in seen or not all(isinstance(t, OnDevice) for t in held) or (
            torch.is_grad_enabled() and (any(t.requires_grad for t in held)
                                         or any(getattr(a, "requires_grad", False) for a in args)))
        seen.add(key)
        _DEPTH[0] += 1
        try:
            if slow:
                return real_call(self, *args, **kwargs)
            plain, mine = [], {}
            args = _unwrap_all(args, plain, mine)
            kwargs = dict(zip(kwargs, _unwrap_all(kwargs.values(), plain, mine), strict=True))
            _check_devices(f"the input of {type(self).__name__}", args, plain)
            for (d, name), t in zip(slots, held, strict=True):
                d[name] = t.elem
            try:
                return _wrap_out(real_call(self, *args, **kwargs), [], {})
            finally:
                for (d, name), t in zip(slots, held, strict=True):
                    d[name] = t
        finally:
            _DEPTH[0] -= 1

    return call


_RealGenerator = torch.Generator


class _AnyGenerator(type(_RealGenerator)):
    def __instancecheck__(cls, obj):
        return isinstance(obj, _RealGenerator)


class Generator(_RealGenerator, metaclass=_AnyGenerator):
    """torch.Generator(device=...) while simulating: a CPU generator that says it is on `device`."""

    def __new__(cls, device="cpu"):
        return _RealGenerator.__new__(cls, "cpu")

    def __init__(self, device="cpu"):
        device = torch.device(device)
        if device.type not in ("cpu", DEVICE.type):
            raise RuntimeError(f"{device.type} device type not an accelerator (simulated: {DEVICE}).")
        self._device = device

    @property
    def device(self) -> torch.device:
        return self._device


_STACK: contextlib.ExitStack | None = None


def _patch(owner, name: str, value) -> None:
    """owner.name = value until uninstall() (a name owner only inherited is deleted again)."""
    if name in vars(owner):
        _STACK.callback(setattr, owner, name, vars(owner)[name])
    else:
        _STACK.callback(delattr, owner, name)
    setattr(owner, name, value)


def _package_modules_holding(name: str, obj) -> list:
    return [m for key, m in list(sys.modules.items())
            if key.split(".")[0] == "ddpm_nb" and vars(m).get(name) is obj]


def replace_everywhere(module, name: str, value) -> None:
    """module.name = value in every ddpm_nb module that holds module.name, until uninstall(); modules
    imported meanwhile (`from .config import pick_device`) get `value` and are reset too."""
    old = getattr(module, name)
    for mod in _package_modules_holding(name, old):
        setattr(mod, name, value)
    _STACK.callback(lambda: [setattr(m, name, old) for m in _package_modules_holding(name, value)])


def install() -> None:
    """Turn the simulation on in this process, until `uninstall()` (a notebook kernel: for good)."""
    global _STACK
    if _STACK is not None:
        return
    import ddpm_nb.config as config

    _STACK = contextlib.ExitStack()
    real_pick = config.pick_device

    def pick_device(prefer: str | None = None) -> torch.device:
        return DEVICE if prefer is None else real_pick(prefer)

    replace_everywhere(config, "pick_device", pick_device)
    _patch(torch, "Generator", Generator)
    for name in FACTORIES:
        _patch(torch, name, _factory(getattr(torch, name)))
    for name in RANDOM_METHODS:
        _patch(torch.Tensor, name, _random_method(getattr(torch.Tensor, name)))
    _patch(torch.Tensor, "to", _to_method(torch.Tensor.to))
    _patch(torch.nn.Module, "__call__", _module_call(torch.nn.Module.__call__))


def uninstall() -> None:
    global _STACK
    if _STACK is not None:
        _STACK.close()
        _STACK = None


@contextlib.contextmanager
def simulated_accelerator():
    """with simulated_accelerator() as errors: ... pick_device() is the simulated device meanwhile."""
    ERRORS.clear()
    install()
    try:
        yield ERRORS
    finally:
        uninstall()


# What a notebook test runs in its kernel before nb.setup(): this module, loaded from its file.
PATCH = f"""\
import importlib.util as _util, sys as _sys
_spec = _util.spec_from_file_location("fake_device", {str(Path(__file__).resolve())!r})
fake_device = _sys.modules["fake_device"] = _util.module_from_spec(_spec)
_spec.loader.exec_module(fake_device)
fake_device.install()
"""
