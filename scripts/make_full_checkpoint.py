#!/usr/bin/python3
"""Writes a full-size ECG-FM-shaped checkpoint in the real fairseq-signals on-disk layout.

Usage: /usr/bin/python3 scripts/make_full_checkpoint.py OUT.pt [--kind finetuned|pretrained]
                                                        [--seed N] [--no-optimizer]
                                                        [--reference-dir DIR]

The file has the dict layout of upstream Trainer.state_dict() (../shared/docs/ecgfm-model.md
section 6a): args, cfg (the upstream full-size cfg from tests/data/ecgfm/full_<kind>__cfg.json),
model (OrderedDict with _metadata, exactly the keys and shapes of
full_<kind>__state_dict_keys.json), criterion, optimizer_history, task_state, extra_state and
last_optimizer_state (fairseq Adam: step, exp_avg, exp_avg_sq per parameter), saved with
torch.save on a file object so that the zip record prefix is "archive/", as the fairseq trainer
writes it. fairseq is not needed.

The weights are seeded random, scaled so that activations stay O(1) through all layers, the
attention is neither uniform nor one-hot, and the classifier probabilities are spread over (0, 1).
Biases and norm affines are non-trivial and the weight-norm scale g differs from ||v|| per tap, so
that a dropped bias, swapped norm parameters or an ignored g change the outputs.
"""

import argparse
import collections
import json
import math
import os
import sys
import time

import torch

# The upstream full-size cfg and key lists, committed with the test data (tests/data/README.md).
REFERENCE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                             "ecgfm")


def init_tensor(key, shape, gen, dims):
    """Returns a seeded tensor for one state_dict key; scales chosen per role (see module doc)."""
    conv_pos_fan_in = dims["pos_fan_in"]
    name = key.split(".")[-1]

    def normal(std, mean=0.0):
        return torch.randn(shape, generator=gen).mul_(std).add_(mean)

    if name == "bias":
        return normal(0.1)
    if len(shape) == 1 and name == "weight":  # LayerNorm / GroupNorm scale
        return normal(0.1, 1.0)
    if "conv_layers" in key:  # Conv1d [out, in, k]: He init keeps the variance through GELU
        return normal(math.sqrt(2.0 / (shape[1] * shape[2])))
    if name == "weight_v" or name == "original1":
        return normal(1.0 / math.sqrt(conv_pos_fan_in))
    if key.endswith(("q_proj.weight", "k_proj.weight")):
        # Attention logits of std ~3 (as in the tiny reference files): peaky, not one-hot.
        return normal(math.sqrt(3.0 / shape[1]))
    if key.endswith(("v_proj.weight", "out_proj.weight")):
        # A weaker attention branch than the residual: with full-strength v/out the near-uniform
        # attention adds the time mean each layer and the frames collapse to one vector by layer 6.
        return normal(0.5 / math.sqrt(shape[1]))
    if key.endswith(("fc1.weight", "fc2.weight",
                     "post_extract_proj.weight", "final_proj.weight", "project_q.weight",
                     "weight_proj.weight")):
        return normal(1.0 / math.sqrt(shape[1]))
    if key == "proj.weight":
        # Logits of std ~1.5 around the bias: probabilities spread over (0, 1).
        return normal(1.5 / math.sqrt(shape[1]))
    if key in ("mask_emb", "quantizer.vars"):
        return torch.rand(shape, generator=gen)
    return normal(0.02)


def metadata_for(keys):
    """The _metadata OrderedDict a module.state_dict() carries: every module prefix -> version 1."""
    meta = collections.OrderedDict()
    meta[""] = {"version": 1}
    for key in keys:
        parts = key.split(".")[:-1]
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix not in meta:
                meta[prefix] = {"version": 1}
    return meta


def build_state_dict(key_list, seed):
    gen = torch.Generator().manual_seed(seed)
    shapes = {k: s for k, s, _ in key_list}
    v_key = next(k for k in shapes if k.endswith(("weight_v", "original1")))
    dims = {"pos_fan_in": shapes[v_key][1] * shapes[v_key][2]}
    sd = collections.OrderedDict()
    for key, shape, dtype in key_list:
        if dtype != "float32":
            raise SystemExit(f"unexpected dtype {dtype} for {key}")
        sd[key] = init_tensor(key, shape, gen, dims)
    # Weight norm (dim=2): g per kernel tap near ||v|| over (out, in), perturbed by 1 + 0.2 N(0,1).
    g_key = v_key[: -len("weight_v")] + "weight_g" if v_key.endswith("weight_v") else \
        v_key[: -len("original1")] + "original0"
    v = sd[v_key]
    norms = v.pow(2).sum(dim=(0, 1), keepdim=True).sqrt()
    sd[g_key] = (norms * (1.0 + 0.2 * torch.randn(norms.shape, generator=gen))).contiguous()
    return sd, gen


def adam_state(sd, gen):
    """fairseq Adam state after some steps: per parameter index, step and the two moments."""
    state = {}
    for i, t in enumerate(sd.values()):
        exp_avg = torch.randn(t.shape, generator=gen).mul_(1e-4)
        exp_avg_sq = exp_avg.square().mul_(0.5).add_(1e-10)
        state[i] = {"step": 456, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    return {
        "state": state,
        "param_groups": [{"lr": 1e-06, "betas": (0.9, 0.98), "eps": 1e-08, "weight_decay": 0.0,
                          "amsgrad": False, "params": list(range(len(sd)))}],
    }


def meter_metrics():
    meters = [
        (10, "loss", "AverageMeter",
         {"val": torch.tensor(3.25), "sum": torch.tensor(208.0), "count": 64, "round": 3}),
        (100, "_correct", "AverageMeter",
         {"val": torch.tensor(17), "sum": torch.tensor(17), "count": 1, "round": None}),
        (180, "wpb", "AverageMeter", {"val": 64.0, "sum": 64.0, "count": 1, "round": 1}),
        (790, "wall", "StopwatchMeter", {"sum": 0, "n": 0, "round": 0}),
    ]
    return collections.OrderedDict([("default", list(meters)), ("train", list(meters))])


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--kind", choices=["finetuned", "pretrained"], default="finetuned")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--no-optimizer", action="store_true",
                    help="leave last_optimizer_state out (a third of the size)")
    ap.add_argument("--reference-dir", default=REFERENCE_DIR,
                    help="folder with full_<kind>__cfg.json and full_<kind>__state_dict_keys.json "
                         "(default: tests/data/ecgfm of this repository)")
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    with open(os.path.join(args.reference_dir, f"full_{args.kind}__cfg.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(args.reference_dir, f"full_{args.kind}__state_dict_keys.json")) as f:
        key_list = json.load(f)

    sd, gen = build_state_dict(key_list, args.seed)
    sd._metadata = metadata_for(sd.keys())
    params = sum(t.numel() for t in sd.values())
    finetuned = args.kind == "finetuned"
    ckpt = {
        "args": None,
        "cfg": cfg,
        "model": sd,
        "criterion": None,
        "optimizer_history": [{
            "criterion_name": "BinaryCrossEntropyWithLogitsCriterion" if finetuned
            else "Wav2Vec2WithCMSCCriterion",
            "optimizer_name": "Adam",
            "lr_scheduler_state": {"lr": 1e-06 if finetuned else 5e-05},
            "num_updates": 456,
        }],
        "task_state": {},
        "extra_state": {
            "metrics": meter_metrics(),
            "previous_training_time": 1234.5,
            "train_iterator": {"version": 2, "epoch": 2, "iterations_in_epoch": 0,
                               "shuffle": True},
            "val_loss": None,
        },
    }
    if not args.no_optimizer:
        ckpt["last_optimizer_state"] = adam_state(sd, gen)

    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:  # a file object: zip prefix "archive/", as fairseq writes it
        torch.save(ckpt, f)
    os.replace(tmp, args.out)
    size = os.path.getsize(args.out)
    print(f"wrote {args.out} kind={args.kind} tensors={len(sd)} params={params} bytes={size} "
          f"optimizer={'no' if args.no_optimizer else 'adam'} seconds={time.monotonic() - t0:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
