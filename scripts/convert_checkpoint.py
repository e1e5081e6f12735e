#!/usr/bin/env python3
"""Rewrite a checkpoint that ssl-probe refuses into one holding only tensors and plain values.

!!! This script UNPICKLES THE INPUT WITH weights_only=False: a malicious file runs arbitrary code
!!! on this machine. Run it only on files from a source you trust, ideally in a throwaway
!!! container or VM, and only with --trust.

It is for checkpoints that need Python objects beyond ssl-probe's allowlist (a function stored in
an optimizer, omegaconf configs in Lightning hyper_parameters, custom config classes). Globals that
cannot be imported here are replaced by inert stubs, so the libraries that wrote the file are not
needed. The output keeps the nested dict layout (so the format is still detected) minus training
state (optimizer, schedulers, scalers, callbacks, loops, hyper_parameters) and minus every value
that is not a tensor, str, int, float, bool or None. It loads with torch.load(weights_only=True).

    python scripts/convert_checkpoint.py --trust IN.pth OUT.pth
    python scripts/convert_checkpoint.py --trust IN.pth OUT.safetensors --key state_dict
"""

from __future__ import annotations

import argparse
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import torch

DROPPED = (
    "optimizer",
    "optimizer_states",
    "lr_schedulers",
    "scaler",
    "fp16_scaler",
    "amp",
    "callbacks",
    "loops",
    "hyper_parameters",
)
PLAIN = (str, int, float, bool, type(None))

WARNING = """\
WARNING: convert_checkpoint.py loads {path} with full unpickling (weights_only=False).
A malicious checkpoint can run arbitrary code while it is read. Continue only if you trust its source.
"""


class _Stub:
    """Stands in for a global that cannot be imported; keeps whatever the pickle hands it, does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _StubbingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            print(f"  stubbing missing global {module}.{name}", file=sys.stderr)
            return type(name, (_Stub,), {"__module__": f"stub.{module}"})


_stubbing_pickle = types.SimpleNamespace(
    Unpickler=_StubbingUnpickler, load=pickle.load, loads=pickle.loads, __name__="stubbing_pickle"
)


def sanitize(value: Any, *, top: bool = False) -> Any:
    """Tensors and plain values inside dicts/lists; everything else becomes None (and is left out).

    A whole pickled ``nn.Module`` becomes its state dict.
    """
    if isinstance(value, torch.nn.Module):
        value = value.state_dict()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().contiguous().clone()
    if isinstance(value, PLAIN):
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, (str, int)) or (top and key in DROPPED):
                continue
            clean = sanitize(item)
            if clean is not None:
                out[key] = clean
        return out
    if isinstance(value, (list, tuple)):
        items = [sanitize(item) for item in value]
        return [item for item in items if item is not None]
    return None


def select(obj: Any, key: str | None) -> Any:
    for part in key.split(".") if key else ():
        if not isinstance(obj, dict) or part not in obj:
            raise SystemExit(f"--key {key!r}: no entry {part!r}")
        obj = obj[part]
    return obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path)
    parser.add_argument(
        "output", type=Path, help=".pth (nested layout kept) or .safetensors (needs a flat tensor dict)"
    )
    parser.add_argument("--key", help="keep only this entry (dotted path, e.g. 'model' or 'state_dict')")
    parser.add_argument("--trust", action="store_true", help="confirm that you trust the input file (required)")
    args = parser.parse_args(argv)
    print(WARNING.format(path=args.input), file=sys.stderr)
    if not args.trust:
        print("refusing to unpickle without --trust", file=sys.stderr)
        return 2
    obj = torch.load(args.input, map_location="cpu", weights_only=False, pickle_module=_stubbing_pickle)
    clean = sanitize(select(obj, args.key), top=args.key is None)
    if args.output.suffix == ".safetensors":
        from safetensors.torch import save_file

        if not (isinstance(clean, dict) and clean and all(isinstance(v, torch.Tensor) for v in clean.values())):
            raise SystemExit(
                "a .safetensors output needs a flat dict of tensors: choose one with --key (e.g. --key state_dict)"
            )
        save_file(clean, str(args.output))
    else:
        torch.save(clean, args.output)
        torch.load(args.output, map_location="cpu", weights_only=True)  # the output must pass the safe reader
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
