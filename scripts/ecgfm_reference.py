#!/usr/bin/python3
"""Eager PyTorch reference of ECG-FM inference, written from ../shared/docs/ecgfm-model.md section 2.

Usage: /usr/bin/python3 scripts/ecgfm_reference.py --checkpoint PT --input X.npy --out DIR
                                                   [--threads N] [--time] [--reps N]
                                                   [--batches 1,2,4,8] [--cold]
                                                   [--intermediates] [--saliency]

Reads a fairseq-signals checkpoint with torch.load, derives the architecture from the tensor
shapes and cfg["model"] (spec section 3c), runs torch.nn.functional ops in float32 and writes the
files `ecgq-worker infer` writes: encoder_out.npy [N,T,E], embedding.npy [N,E] and, for
classifiers, logits.npy and probs.npy [N,L] and labels.txt. It is the parity baseline for the
native model and the "PyTorch eager" baseline of bench/. --time prints one key=value line with the
load time and the forward time (after a warm-up run; median of --reps runs); with --batches, one
such line per batch size, the input's segments tiled to that size. --cold prints one key=value line
splitting this process's own time (imports, torch.load + building the model, the one forward pass,
writing the outputs): bench/model_bench.py times `--out DIR --cold` as a whole process against a
cold `ecgq-worker infer`.
"""

import time  # noqa: E402  (first, so that --cold can time the imports below)

T_START = time.perf_counter()

import argparse
import os
import re
import statistics
import sys

import numpy as np
import torch
import torch.nn.functional as F

LABELS = [
    "Poor data quality", "Sinus rhythm", "Premature ventricular contraction", "Tachycardia",
    "Ventricular tachycardia", "Supraventricular tachycardia with aberrancy",
    "Atrial fibrillation", "Atrial flutter", "Bradycardia", "Accessory pathway conduction",
    "Atrioventricular block", "1st degree atrioventricular block", "Bifascicular block",
    "Right bundle branch block", "Left bundle branch block", "Infarction",
    "Electronic pacemaker",
]

DEFAULTS = {  # dataclass defaults (spec section 1) for fields missing from cfg["model"]
    "encoder_attention_heads": 12,
    "conv_feature_layers": "[(256, 2, 2)] * 4",
    "layer_norm_first": False,
    "extractor_mode": "default",
}

EPS = 1e-5


def parse_conv_layers(text):
    """Parses "[(d, k, s), ...] * n + [...]" into a list of (d, k, s) without eval."""
    layers = []
    for term in text.split("+"):
        m = re.fullmatch(r"\s*\[(.*)\]\s*(?:\*\s*(\d+))?\s*", term)
        if not m:
            raise ValueError(f"cfg.model.conv_feature_layers: cannot parse term {term!r}")
        tuples = [tuple(int(v) for v in t.split(","))
                  for t in re.findall(r"\(([^()]*)\)", m.group(1))]
        layers += tuples * int(m.group(2) or 1)
    return layers


class Ecgfm:
    """The weights of one checkpoint, arranged for the functional forward pass."""

    def __init__(self, ckpt):
        cfg = dict(DEFAULTS)
        cfg.update({k: v for k, v in (ckpt.get("cfg") or {}).get("model", {}).items()
                    if v is not None})
        sd = ckpt["model"]
        self.kind = cfg.get("_name")
        # Fine-tuned classifier: encoder under "encoder."; pretrained: no prefix.
        self.p = "encoder." if "encoder.feature_extractor.conv_layers.0.0.weight" in sd else ""
        p = self.p
        self.sd = {k: v.float().contiguous() for k, v in sd.items()}
        self.heads = int(cfg["encoder_attention_heads"])
        self.layer_norm_first = bool(cfg["layer_norm_first"])
        self.extractor_mode = cfg["extractor_mode"]
        self.strides = [s for _, _, s in parse_conv_layers(cfg["conv_feature_layers"])]
        self.n_conv = 0
        while f"{p}feature_extractor.conv_layers.{self.n_conv}.0.weight" in sd:
            self.n_conv += 1
        self.n_layers = 0
        while f"{p}encoder.layers.{self.n_layers}.fc1.weight" in sd:
            self.n_layers += 1
        pc = f"{p}conv_pos.pos_conv.0."
        if pc + "weight_g" in sd:
            g, v = self.sd[pc + "weight_g"], self.sd[pc + "weight_v"]
        else:
            g = self.sd[pc + "parametrizations.weight.original0"]
            v = self.sd[pc + "parametrizations.weight.original1"]
        # Weight norm with dim=2: the norm is per kernel tap over (out, in); folded once here.
        self.pos_w = v * (g / v.pow(2).sum(dim=(0, 1), keepdim=True).sqrt())
        self.pos_b = self.sd[pc + "bias"]
        self.pos_k = v.shape[2]
        self.pos_groups = v.shape[0] // v.shape[1]  # in = out = E channels; v is [E, E/groups, k]
        self.has_head = "proj.weight" in sd
        self.params = sum(t.numel() for t in sd.values())

    def w(self, name):
        return self.sd[self.p + name]

    def forward(self, x, want=None, saliency=False):
        """x: [B, C_in, S] float32. Returns dict of outputs; `want` collects intermediates."""
        inter = want if want is not None else {}
        p = "feature_extractor.conv_layers."
        for i in range(self.n_conv):
            x = F.conv1d(x, self.w(f"{p}{i}.0.weight"), self.sd.get(f"{self.p}{p}{i}.0.bias"),
                         stride=self.strides[i])
            if self.extractor_mode == "default" and i == 0 and f"{self.p}{p}0.2.weight" in self.sd:
                x = F.group_norm(x, x.shape[1], self.w(f"{p}0.2.weight"), self.w(f"{p}0.2.bias"),
                                 eps=EPS)
            elif self.extractor_mode == "layer_norm":
                x = F.layer_norm(x.transpose(1, 2), [x.shape[1]], self.w(f"{p}{i}.2.1.weight"),
                                 self.w(f"{p}{i}.2.1.bias"), eps=EPS).transpose(1, 2)
            x = F.gelu(x)
            inter[f"conv{i}_out"] = x
        x = x.transpose(1, 2)
        x = F.layer_norm(x, [x.shape[-1]], self.w("layer_norm.weight"), self.w("layer_norm.bias"),
                         eps=EPS)
        inter["feat_layer_norm_out"] = x
        if self.p + "post_extract_proj.weight" in self.sd:
            x = F.linear(x, self.w("post_extract_proj.weight"), self.w("post_extract_proj.bias"))
        inter["post_extract_proj_out"] = x
        y = F.conv1d(x.transpose(1, 2), self.pos_w, self.pos_b, padding=self.pos_k // 2,
                     groups=self.pos_groups)
        if self.pos_k % 2 == 0:  # SamePad drops the last frame for an even kernel
            y = y[:, :, :-1]
        y = F.gelu(y).transpose(1, 2)
        inter["conv_pos_out"] = y
        x = x + y
        e = "encoder."
        if not self.layer_norm_first:
            x = F.layer_norm(x, [x.shape[-1]], self.w(e + "layer_norm.weight"),
                             self.w(e + "layer_norm.bias"), eps=EPS)
        inter["encoder_in_layer_norm_out"] = x
        attn = None
        for l in range(self.n_layers):
            x, attn = self.layer(x, f"{e}layers.{l}.", need_weights=saliency and
                                 l == self.n_layers - 1)
            inter[f"layer{l}_out"] = x
        if self.layer_norm_first:
            x = F.layer_norm(x, [x.shape[-1]], self.w(e + "layer_norm.weight"),
                             self.w(e + "layer_norm.bias"), eps=EPS)
        out = {"encoder_out": x}
        out["embedding"] = x.sum(dim=1) / (x != 0).sum(dim=1)
        if self.has_head:
            out["logits"] = F.linear(out["embedding"], self.sd["proj.weight"],
                                     self.sd["proj.bias"])
            out["probs"] = torch.sigmoid(out["logits"])
        if attn is not None:
            out["saliency"] = attn
        return out

    def layer(self, x, q, need_weights):
        E = x.shape[-1]
        if self.layer_norm_first:
            r = x
            x = F.layer_norm(x, [E], self.w(q + "self_attn_layer_norm.weight"),
                             self.w(q + "self_attn_layer_norm.bias"), eps=EPS)
            x, attn = self.mha(x, q + "self_attn.", need_weights)
            x = r + x
            r = x
            x = F.layer_norm(x, [E], self.w(q + "final_layer_norm.weight"),
                             self.w(q + "final_layer_norm.bias"), eps=EPS)
            x = r + self.ffn(x, q)
            return x, attn
        r = x
        x, attn = self.mha(x, q + "self_attn.", need_weights)
        x = F.layer_norm(r + x, [E], self.w(q + "self_attn_layer_norm.weight"),
                         self.w(q + "self_attn_layer_norm.bias"), eps=EPS)
        r = x
        x = F.layer_norm(r + self.ffn(x, q), [E], self.w(q + "final_layer_norm.weight"),
                         self.w(q + "final_layer_norm.bias"), eps=EPS)
        return x, attn

    def ffn(self, x, q):
        x = F.gelu(F.linear(x, self.w(q + "fc1.weight"), self.w(q + "fc1.bias")))
        return F.linear(x, self.w(q + "fc2.weight"), self.w(q + "fc2.bias"))

    def mha(self, x, a, need_weights):
        B, T, E = x.shape
        H = self.heads
        D = E // H

        def proj(n):
            return F.linear(x, self.w(f"{a}{n}_proj.weight"), self.w(f"{a}{n}_proj.bias"))

        q = (proj("q") * D ** -0.5).view(B, T, H, D).transpose(1, 2)  # heads: contiguous channels
        k = proj("k").view(B, T, H, D).transpose(1, 2)
        v = proj("v").view(B, T, H, D).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-1, -2), dim=-1)  # [B, H, T, T]
        o = (att @ v).transpose(1, 2).reshape(B, T, E)
        o = F.linear(o, self.w(f"{a}out_proj.weight"), self.w(f"{a}out_proj.bias"))
        return o, (att.mean(dim=1) if need_weights else None)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--input", required=True, help="float32 .npy [N, 12, 2500]")
    ap.add_argument("--out", help="output directory (created if needed)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    ap.add_argument("--time", action="store_true", help="print load and forward wall times")
    ap.add_argument("--reps", type=int, default=5, help="timed forward runs with --time")
    ap.add_argument("--batches", help="with --time: comma-separated batch sizes (input tiled)")
    ap.add_argument("--cold", action="store_true",
                    help="print the split of this process's time (imports, load, forward, write)")
    ap.add_argument("--intermediates", action="store_true",
                    help="also write every intermediate (names as in ../shared/ecgfm)")
    ap.add_argument("--saliency", action="store_true", help="also write saliency_last_layer.npy")
    args = ap.parse_args(argv)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    x = np.load(args.input)
    if x.dtype != np.float32 or x.ndim != 3:
        print(f"error: {args.input}: expected float32 [N, C, S], got {x.dtype} {list(x.shape)}",
              file=sys.stderr)
        return 2
    x = torch.from_numpy(np.ascontiguousarray(x))
    batches = [int(b) for b in args.batches.split(",")] if args.batches else []

    import_s = time.perf_counter() - T_START
    t0 = time.perf_counter()
    ckpt = torch.load(args.checkpoint, map_location="cpu")
    model = Ecgfm(ckpt)
    del ckpt
    load_s = time.perf_counter() - t0

    with torch.inference_mode():
        inter = {} if args.intermediates else None
        t0, c0 = time.perf_counter(), time.process_time()
        out = model.forward(x, inter, saliency=args.saliency)
        first_s = time.perf_counter() - t0
        first_cpu_s = time.process_time() - c0
        times = []
        if args.time and not batches:
            for _ in range(max(1, args.reps)):
                t0 = time.perf_counter()
                model.forward(x)
                times.append(time.perf_counter() - t0)
        per_batch = []
        for b in batches if args.time else []:
            xb = x.repeat((b + x.shape[0] - 1) // x.shape[0], 1, 1)[:b].contiguous()
            t0 = time.perf_counter()
            model.forward(xb)  # warm-up at this size
            first_b = time.perf_counter() - t0
            tb, cb = [], []  # wall and process CPU seconds (CPU time holds up under load)
            for _ in range(max(1, args.reps)):
                t0, c0 = time.perf_counter(), time.process_time()
                model.forward(xb)
                tb.append(time.perf_counter() - t0)
                cb.append(time.process_time() - c0)
            per_batch.append((b, first_b, tb, cb))

    t_write = time.perf_counter()
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        for name, t in out.items():
            fname = "saliency_last_layer" if name == "saliency" else name
            np.save(os.path.join(args.out, fname + ".npy"),
                    np.ascontiguousarray(t.numpy().astype(np.float32)))
        for name, t in (inter or {}).items():
            np.save(os.path.join(args.out, name + ".npy"), np.ascontiguousarray(t.numpy()))
        if model.has_head:
            n = model.sd["proj.weight"].shape[0]
            names = LABELS if n == len(LABELS) else [f"label_{i}" for i in range(n)]
            with open(os.path.join(args.out, "labels.txt"), "w") as f:
                f.write("".join(name + "\n" for name in names))
    write_s = time.perf_counter() - t_write
    if args.cold:
        print(f"import_s={import_s:.4f} load_s={load_s:.4f} forward_s={first_s:.4f} "
              f"forward_cpu_s={first_cpu_s:.4f} write_s={write_s:.4f} script_s={time.perf_counter() - T_START:.4f} "
              f"threads={torch.get_num_threads()} batch={x.shape[0]}", flush=True)
    for b, first_b, tb, cb in per_batch:
        print(f"load_s={load_s:.4f} first_forward_s={first_b:.4f} "
              f"forward_s={statistics.median(tb):.4f} forward_min_s={min(tb):.4f} "
              f"cpu_s={statistics.median(cb):.4f} cpu_min_s={min(cb):.4f} "
              f"reps={len(tb)} threads={torch.get_num_threads()} batch={b} "
              f"params={model.params} layers={model.n_layers} kind={model.kind}")
    if args.time and not batches:
        print(f"load_s={load_s:.4f} first_forward_s={first_s:.4f} "
              f"forward_s={statistics.median(times):.4f} forward_min_s={min(times):.4f} "
              f"reps={len(times)} threads={torch.get_num_threads()} batch={x.shape[0]} "
              f"params={model.params} layers={model.n_layers} kind={model.kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
