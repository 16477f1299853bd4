"""llama.cpp decode and prompt speed on this machine, for comparison with `lafn bench`.
Usage: python3 benches/llamacpp_decode.py MODEL.gguf [threads]"""
import statistics
import sys
import time

from llama_cpp import Llama

PROMPT = ("The history of the city begins in the early middle ages, when a small settlement grew around the "
          "river crossing. Merchants from many countries came to trade wool, salt and wine, and over the "
          "following centuries the town became")


def main():
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    llm = Llama(model_path=sys.argv[1], n_ctx=512, n_threads=threads, n_batch=512, verbose=False)
    ids = llm.tokenize(PROMPT.encode(), add_bos=True)
    prompt_times, decode_times = [], []
    for _ in range(3):
        llm.reset()
        start = time.perf_counter()
        llm.eval(ids)
        prompt_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(64):
            token = int(llm.scores[llm.n_tokens - 1].argmax())
            llm.eval([token])
        decode_times.append((time.perf_counter() - start) / 64)
    p, d = statistics.median(prompt_times), statistics.median(decode_times)
    print(f"llama.cpp prompt ({len(ids)} tokens): {p * 1e3:.1f} ms, {len(ids) / p:.0f} tokens/s")
    print(f"llama.cpp decode: {d * 1e3:.2f} ms/token, {1 / d:.1f} tokens/s")


if __name__ == "__main__":
    main()
