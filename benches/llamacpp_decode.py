"""llama.cpp decode and prompt speed on this machine, for comparison with `lafn bench` (same prompt, 64
greedy tokens, medians of 3). Usage: python3 benches/llamacpp_decode.py MODEL.gguf [threads]"""
import statistics
import sys
import time

from llama_cpp import Llama

PROMPT = ("The history of the city begins in the early middle ages, when a small settlement grew around the "
          "river crossing. Merchants from many countries came to trade wool, salt and wine, and over the "
          "following centuries the town became")
DECODE_TOKENS = 64


def measure(model_path, threads=2):
    """(prompt tokens, prompt seconds, decode seconds per token), medians of 3 runs."""
    llm = Llama(model_path=model_path, n_ctx=512, n_threads=threads, n_batch=512, verbose=False)
    ids = llm.tokenize(PROMPT.encode(), add_bos=True)
    prompt_times, decode_times = [], []
    for _ in range(3):
        llm.reset()
        start = time.perf_counter()
        llm.eval(ids)
        prompt_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(DECODE_TOKENS):
            token = int(llm.scores[llm.n_tokens - 1].argmax())
            llm.eval([token])
        decode_times.append((time.perf_counter() - start) / DECODE_TOKENS)
    return len(ids), statistics.median(prompt_times), statistics.median(decode_times)


def main():
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    tokens, prompt, decode = measure(sys.argv[1], threads)
    print(f"llama.cpp prompt ({tokens} tokens): {prompt * 1e3:.1f} ms, {tokens / prompt:.0f} tokens/s")
    print(f"llama.cpp decode: {decode * 1e3:.2f} ms/token, {1 / decode:.1f} tokens/s")


if __name__ == "__main__":
    main()
