"""lafn and llama.cpp on the same GGUF files in one run: `lafn bench` and `llamacpp_decode.py` alternate
for a number of rounds per model, and the medians are printed as a markdown table (prompt forward and
decode time per token, and lafn's time over llama.cpp's).

Usage: python3 benches/side_by_side.py [--lafn target/release/lafn] [--rounds 5] [MODEL ...]
(MODEL: built-in names, default all three; `pip install llama-cpp-python` first, see README)."""
import argparse
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llamacpp_decode import measure  # noqa: E402

BUILT_IN = ["gemma-3-270m", "qwen2.5-coder-0.5b", "smollm2-135m"]


def lafn_output(lafn, *args):
    return subprocess.run([lafn, *args], check=True, capture_output=True, text=True).stdout


def lafn_times(lafn, model):
    """(prompt seconds, decode seconds per token) of one `lafn bench` run."""
    report = lafn_output(lafn, "bench", "--model", model)
    prompt = re.search(r"prompt forward \(quantized, \d+ tokens\): ([\d.]+) ms", report)
    decode = re.search(r"decode \(quantized, greedy\): ([\d.]+) ms/token", report)
    if not (prompt and decode):
        sys.exit(f"unexpected `lafn bench` report for {model}:\n{report}")
    return float(prompt.group(1)) / 1e3, float(decode.group(1)) / 1e3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lafn", default="target/release/lafn")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("models", nargs="*", default=BUILT_IN)
    args = parser.parse_args()
    rows = []
    for model in args.models:
        gguf = re.search(r"^path:\s+(.+)$", lafn_output(args.lafn, "inspect", "--model", model), re.M).group(1)
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(lafn_times(args.lafn, model))
            tokens, prompt, decode = measure(gguf, args.threads)
            theirs.append((prompt, decode))
        median = lambda runs, i: statistics.median(r[i] for r in runs)  # noqa: E731
        rows.append((model, tokens, [median(ours, i) for i in (0, 1)], [median(theirs, i) for i in (0, 1)]))
        print(f"{model}: done", file=sys.stderr)
    print(f"Medians of {args.rounds} alternating runs, {args.threads} threads.\n")
    print("| model | prompt (tokens) | lafn prompt ms | llama.cpp prompt ms | ratio "
          "| lafn decode ms/token | llama.cpp decode ms/token | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for model, tokens, (op, od), (tp, td) in rows:
        print(f"| {model} | {tokens} | {op * 1e3:.1f} | {tp * 1e3:.1f} | {op / tp:.2f} "
              f"| {od * 1e3:.2f} | {td * 1e3:.2f} | {od / td:.2f} |")


if __name__ == "__main__":
    main()
