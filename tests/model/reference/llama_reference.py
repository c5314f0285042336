#!/usr/bin/env python3
"""Independent reference of Hugging Face LlamaForCausalLM's forward pass, in pure Python.

It reads a model directory as `fedctl make-model` writes it (config.json + model.safetensors with
F32, F16 or BF16 tensors, or a sharded checkpoint) and computes the logits of token sequences the
way transformers' modeling_llama.py does (eager attention), in float64:

  embed_tokens -> for each layer:
      h = x + o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))), n = input_layernorm(x)
      x = h + down_proj(silu(gate_proj(m)) * up_proj(m)),               m = post_attention_layernorm(h)
  -> norm -> lm_head (embed_tokens when tie_word_embeddings)

  RMSNorm   x * 1/sqrt(mean(x^2) + eps) * weight
  RoPE      rotate_half layout: inv_freq[i] = 1/theta^(2i/head_dim) (+ "linear"/"llama3"
            rope_scaling), q*cos + rotate_half(q)*sin with cos/sin repeated over both halves
  attention query head h uses kv head h // (heads // kv_heads); softmax(q.k / sqrt(head_dim))
            over keys 0..query (causal)
  loss      mean next-token cross-entropy over every predicted position of every sequence

Only the Python 3 standard library is used (no numpy, no torch), so the C++ implementation is
checked against code that shares nothing with it.

Usage:
  llama_reference.py logits --model DIR --tokens "1 2 3"      # prints {"logits": [[...], ...]}
  llama_reference.py regenerate --fedctl PATH [--out DIR] [--only NAME]
      re-creates the fixtures listed in fixtures.json: runs `fedctl make-model` for each, applies
      its config patch, and writes DIR/NAME/expected.json (DIR defaults to this directory).
"""

import argparse
import json
import math
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


# ----------------------------------------------------------------------------- safetensors


def _f16(bits):
    return struct.unpack("<e", struct.pack("<H", bits))[0]


def _bf16(bits):
    return struct.unpack("<f", struct.pack("<I", bits << 16))[0]


def read_safetensors(path):
    """Returns {name: (shape, flat list of floats)} for the F32/F16/BF16 tensors of a file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin : base + end]
        count = 1
        for d in info["shape"]:
            count *= d
        dtype = info["dtype"]
        if dtype == "F32":
            values = list(struct.unpack("<%df" % count, raw))
        elif dtype == "F16":
            values = list(struct.unpack("<%de" % count, raw))
        elif dtype == "BF16":
            values = [_bf16(b) for b in struct.unpack("<%dH" % count, raw)]
        else:
            raise ValueError("%s: tensor %s has dtype %s" % (path, name, dtype))
        tensors[name] = (info["shape"], values)
    return tensors


def load_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    index = os.path.join(model_dir, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        for shard in shards:
            tensors.update(read_safetensors(os.path.join(model_dir, shard)))
    else:
        tensors = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    return config, tensors


def matrix(tensors, name):
    """A [rows, cols] tensor as a list of row lists."""
    (rows, cols), values = tensors[name]
    return [values[r * cols : (r + 1) * cols] for r in range(rows)]


# ----------------------------------------------------------------------------- the model


def matvec(w, x):
    return [math.fsum(map(float.__mul__, row, x)) for row in w]


def rms_norm(x, weight, eps):
    inv = 1.0 / math.sqrt(math.fsum(v * v for v in x) / len(x) + eps)
    return [w * (v * inv) for v, w in zip(x, weight)]


def rope_inv_freq(config, head_dim):
    """transformers' rope initialisation: default, "linear" and "llama3"."""
    theta = float(config.get("rope_theta", 10000.0))
    inv_freq = [1.0 / theta ** (i / head_dim) for i in range(0, head_dim, 2)]
    scaling = config.get("rope_scaling")
    if not scaling:
        return inv_freq
    kind = scaling.get("rope_type", scaling.get("type"))
    factor = float(scaling["factor"])
    if kind == "linear":
        return [f / factor for f in inv_freq]
    if kind == "llama3":
        old = float(scaling["original_max_position_embeddings"])
        low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
        low_wavelen, high_wavelen = old / low, old / high
        out = []
        for f in inv_freq:
            wavelen = 2 * math.pi / f
            scaled = f / factor if wavelen > low_wavelen else f
            if not (wavelen < high_wavelen) and not (wavelen > low_wavelen):
                smooth = (old / wavelen - low) / (high - low)
                scaled = (1 - smooth) * scaled / factor + smooth * scaled
            out.append(scaled)
        return out
    raise ValueError("rope_scaling type %r" % kind)


def apply_rope(vec, heads, head_dim, cos, sin):
    """q * cos + rotate_half(q) * sin for every head of vec, rotate_half(q) = (-q2, q1)."""
    half = head_dim // 2
    out = list(vec)
    for h in range(heads):
        o = h * head_dim
        q = vec[o : o + head_dim]
        rotated = [-v for v in q[half:]] + q[:half]
        for j in range(head_dim):
            out[o + j] = q[j] * cos[j] + rotated[j] * sin[j]
    return out


class Llama:
    def __init__(self, model_dir):
        self.config, t = load_model(model_dir)
        c = self.config
        self.hidden = c["hidden_size"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads") or self.heads
        self.head_dim = c.get("head_dim") or self.hidden // self.heads
        self.eps = float(c.get("rms_norm_eps", 1e-6))
        self.embed = matrix(t, "model.embed_tokens.weight")
        self.layers = []
        for i in range(c["num_hidden_layers"]):
            p = "model.layers.%d." % i
            self.layers.append(
                {
                    "input_layernorm": t[p + "input_layernorm.weight"][1],
                    "post_attention_layernorm": t[p + "post_attention_layernorm.weight"][1],
                    **{
                        k: matrix(t, p + s + ".weight")
                        for k, s in [
                            ("q", "self_attn.q_proj"),
                            ("k", "self_attn.k_proj"),
                            ("v", "self_attn.v_proj"),
                            ("o", "self_attn.o_proj"),
                            ("gate", "mlp.gate_proj"),
                            ("up", "mlp.up_proj"),
                            ("down", "mlp.down_proj"),
                        ]
                    },
                }
            )
        self.norm = t["model.norm.weight"][1]
        tied = c.get("tie_word_embeddings", False)
        self.lm_head = self.embed if tied else matrix(t, "lm_head.weight")
        self.inv_freq = rope_inv_freq(c, self.head_dim)

    def logits(self, ids):
        hd, heads, kv_heads = self.head_dim, self.heads, self.kv_heads
        group = heads // kv_heads
        scaling = hd**-0.5
        cos, sin = [], []
        for p in range(len(ids)):
            angles = [p * f for f in self.inv_freq] * 2  # cat(freqs, freqs)
            cos.append([math.cos(a) for a in angles])
            sin.append([math.sin(a) for a in angles])
        x = [list(self.embed[i]) for i in ids]
        for w in self.layers:
            n = [rms_norm(v, w["input_layernorm"], self.eps) for v in x]
            q = [apply_rope(matvec(w["q"], v), heads, hd, cos[p], sin[p]) for p, v in enumerate(n)]
            k = [apply_rope(matvec(w["k"], v), kv_heads, hd, cos[p], sin[p]) for p, v in enumerate(n)]
            val = [matvec(w["v"], v) for v in n]
            attn = [[0.0] * (heads * hd) for _ in ids]
            for h in range(heads):
                g = h // group
                for i in range(len(ids)):
                    qi = q[i][h * hd : (h + 1) * hd]
                    scores = [
                        math.fsum(map(float.__mul__, qi, k[j][g * hd : (g + 1) * hd])) * scaling
                        for j in range(i + 1)
                    ]
                    m = max(scores)
                    e = [math.exp(s - m) for s in scores]
                    total = math.fsum(e)
                    for d in range(hd):
                        attn[i][h * hd + d] = math.fsum(
                            e[j] / total * val[j][g * hd + d] for j in range(i + 1)
                        )
            x = [[a + b for a, b in zip(xv, matvec(w["o"], av))] for xv, av in zip(x, attn)]
            m = [rms_norm(v, w["post_attention_layernorm"], self.eps) for v in x]
            out = []
            for xv, mv in zip(x, m):
                gate, up = matvec(w["gate"], mv), matvec(w["up"], mv)
                act = [g / (1.0 + math.exp(-g)) * u for g, u in zip(gate, up)]
                out.append([a + b for a, b in zip(xv, matvec(w["down"], act))])
            x = out
        return [matvec(self.lm_head, rms_norm(v, self.norm, self.eps)) for v in x]


def cross_entropy(sequences, logits):
    """Mean next-token cross-entropy over every predicted position of every sequence."""
    total, count = [], 0
    for ids, rows in zip(sequences, logits):
        for p in range(len(ids) - 1):
            row = rows[p]
            m = max(row)
            lse = m + math.log(math.fsum(math.exp(v - m) for v in row))
            total.append(lse - row[ids[p + 1]])
            count += 1
    return math.fsum(total) / count


# ----------------------------------------------------------------------------- fixtures


def rounded(values):
    """Ten significant digits: far finer than the C++ test's tolerance, and stable across libms."""
    return [float("%.10g" % v) for v in values]


def regenerate(fedctl, out_dir, only):
    with open(os.path.join(HERE, "fixtures.json")) as f:
        fixtures = json.load(f)
    names = [fx["name"] for fx in fixtures]
    if only and only not in names:
        raise SystemExit("no fixture named %r (have %s)" % (only, ", ".join(names)))
    for fx in fixtures:
        if only and fx["name"] != only:
            continue
        model_dir = os.path.join(out_dir, fx["name"])
        subprocess.run([fedctl, "make-model", "--out", model_dir] + fx["make_model"], check=True)
        if fx.get("config_patch"):
            path = os.path.join(model_dir, "config.json")
            with open(path) as f:
                config = json.load(f)
            config.update(fx["config_patch"])
            with open(path, "w") as f:
                f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
        model = Llama(model_dir)
        logits = [model.logits(ids) for ids in fx["sequences"]]
        expected = {
            "fixture": fx["name"],
            "sequences": fx["sequences"],
            "loss": float("%.12g" % cross_entropy(fx["sequences"], logits)),
            "logits": [[rounded(row) for row in seq] for seq in logits],
        }
        with open(os.path.join(model_dir, "expected.json"), "w") as f:
            json.dump(expected, f, separators=(",", ":"))
            f.write("\n")
        print("wrote %s" % model_dir)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("logits", help="print the logits of one sequence as JSON")
    p.add_argument("--model", required=True)
    p.add_argument("--tokens", required=True)
    p = sub.add_parser("regenerate", help="re-create the fixtures of fixtures.json")
    p.add_argument("--fedctl", required=True, help="path of the built fedctl")
    p.add_argument("--out", default=HERE, help="directory to write the fixtures into")
    p.add_argument("--only", help="one fixture name")
    args = parser.parse_args()
    if args.command == "logits":
        ids = [int(t) for t in args.tokens.split()]
        json.dump({"logits": Llama(args.model).logits(ids)}, sys.stdout)
        sys.stdout.write("\n")
    else:
        regenerate(args.fedctl, args.out, args.only)


if __name__ == "__main__":
    main()
