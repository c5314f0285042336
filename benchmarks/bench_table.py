#!/usr/bin/env python3
"""Turns bench_fhe's JSON lines (stdin) into the Markdown table the README quotes."""
import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.strip().startswith("{")]
print("| shape (d_out, d_in, T) | threads | encrypted GEMM s | int8 GEMM s | ratio vs int8 [spread] "
      "| ratio vs fp32 | encrypt ns/value | decrypt ns/value | up B/value | down B/value "
      "(switched) | exact |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for d in rows:
    lo, hi = d["ratio_vs_int8_spread"]
    down = f'{d["bytes_down_per_value"]:.2f}'
    if d.get("switched_bits"):
        down += f' ({d["bytes_down_switched_per_value"]:.2f}, {d["switched_bits"]} bits)'
    exact = "yes" if d["bit_exact"] and d.get("switched_bit_exact", True) else "NO"
    print(f'| {tuple(d["shape"])} | {d["threads"]} | {d["enc_gemm_s"]:.3f} | {d["int8_gemm_s"]:.4f} '
          f'| {d["ratio_vs_int8"]:.1f} [{lo:.1f}, {hi:.1f}] | {d["ratio_vs_fp32"]:.2f} '
          f'| {d["encrypt_ns_per_value"]:.1f} | {d["decrypt_ns_per_value"]:.1f} '
          f'| {d["bytes_up_per_value"]:.2f} | {down} | {exact} |')
