#!/usr/bin/python3
"""Writes small fairseq-like torch checkpoints (seed corpus for tests/fuzz/fuzz_checkpoint).

Usage: /usr/bin/python3 scripts/make_test_checkpoints.py OUT_DIR
Each file exercises one layout torch really writes: saved to a file object (prefix "archive/"),
saved to a path (prefix = file stem), shared storages, non-contiguous views, several dtypes,
protocol 4 and 5 pickles (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL).
"""
import collections
import io
import os
import sys

import torch


def checkpoint(model):
    return {
        "args": None,
        "cfg": {"model": {"_name": "tiny", "encoder_attention_heads": 2, "dropout": 0.1,
                          "conv_feature_layers": "[(8, 2, 2)] * 2", "latent_temp": [2.0, 0.5],
                          "layer_norm_first": False, "args": None}},
        "model": model,
        "criterion": None,
        "optimizer_history": [{"optimizer_name": "Adam", "num_updates": 1}],
        "task_state": {},
        "extra_state": {"val_loss": 1.5, "step": torch.tensor(3, dtype=torch.int64)},
        "last_optimizer_state": {"state": {0: {"step": 1, "exp_avg": torch.zeros(4, 2)}},
                                 "param_groups": [{"lr": [5e-05], "betas": (0.9, 0.98)}]},
    }


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    base = torch.randn(4, 6)
    model = collections.OrderedDict()
    model["w"] = torch.randn(4, 2)
    model["b"] = torch.randn(4)
    model["shared_a"] = base[:2]
    model["shared_b"] = base[2:]
    model["transposed"] = base.t()
    model["half"] = torch.randn(3).half()
    model["long"] = torch.arange(5)
    model["flag"] = torch.tensor([True, False])
    model._metadata = collections.OrderedDict({"": {"version": 1}})
    obj = checkpoint(model)

    buf = io.BytesIO()
    torch.save(obj, buf)  # what the fairseq trainer does: prefix "archive"
    with open(os.path.join(out, "fileobj.pt"), "wb") as f:
        f.write(buf.getvalue())
    torch.save(obj, os.path.join(out, "by_path.pt"))  # prefix "by_path"
    for proto in (4, 5):
        torch.save(obj, os.path.join(out, f"proto{proto}.pt"), pickle_protocol=proto)


if __name__ == "__main__":
    main(sys.argv[1])
