"""Generation with a KV cache, batched over prompts of different lengths;
``python -m fastllm.generate`` samples text from a training checkpoint.

    python -m fastllm.generate --checkpoint runs/tiny --prompt "def " --max-new-tokens 200

:func:`generate` left-pads the prompts into one batch (see
:mod:`fastllm.model.cache`), runs the prompt once (prefill), then one token
per row per step over the cache. Greedy at temperature 0, else sampling with
temperature, then top-k, then top-p (the order of Hugging Face's warpers). A
row ends at its first stop token; it is then fed padding and its output stops
growing; the call ends when every row has ended. Past ``model.max_seq_len``
the window slides: each step recomputes the last ``max_seq_len`` tokens
(RoPE positions restart), exactly what an uncached model would see.

The CLI rebuilds the model from the config saved with the checkpoint; text is
encoded with the run's ``tokenizer.json`` when it saved one, else as UTF-8
bytes (the embedded byte-level corpus).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from fastllm.config import Section, check, cli, knob, run_cli, section
from fastllm.model.cache import KVCache
from fastllm.model.decoder import Decoder


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """``logits`` [B, V] with all but the ``k`` largest of each row set to -inf (ties kept)."""
    if k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """``logits`` [B, V] with each row cut to its nucleus: the fewest most likely
    tokens whose probability reaches ``p`` (Holtzman et al. 2019). A token is
    kept when the tokens ranked above it hold less than ``p``; the top one always is."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    above = probs.cumsum(dim=-1) - probs  # mass of the tokens ranked higher
    drop = torch.zeros_like(above, dtype=torch.bool).scatter_(-1, order, above >= p)
    return logits.masked_fill(drop, float("-inf"))


def next_tokens(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The next token of each row [B] from its logits [B, V]: argmax at
    ``temperature`` 0, else a draw from the tempered, top-k and top-p filtered softmax."""
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    if generator is not None and generator.device != probs.device:
        probs = probs.to(generator.device)
    return torch.multinomial(probs, 1, generator=generator).view(-1).to(logits.device)


def check_sampling(
    max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None
) -> None:
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")


@torch.inference_mode()
def generate(
    model: Decoder,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int = 100,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop_tokens: Sequence[int] = (),
    generator: torch.Generator | None = None,
    seed: int | None = None,
    pad_id: int = 0,
) -> list[list[int]]:
    """The new token ids of each prompt (a row ends with its stop token, if it
    met one). ``seed`` makes a generator when none is given; ``pad_id`` is fed
    to the rows that ended (any valid id: nothing attends to it)."""
    check_sampling(max_new_tokens, temperature, top_k, top_p)
    for i, p in enumerate(prompts):
        if len(p) == 0:
            raise ValueError(f"prompt {i} has no tokens")
    B = len(prompts)
    if B == 0 or max_new_tokens == 0:
        return [[] for _ in range(B)]
    device = next(model.parameters()).device
    if generator is None and seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    lengths = [len(p) for p in prompts]
    P, W = max(lengths), model.config.max_seq_len
    # Every row's tokens so far, left-padded: rows stay aligned on the right.
    seq = torch.full((B, P + max_new_tokens), pad_id, dtype=torch.long)
    for b, p in enumerate(prompts):
        seq[b, P - len(p) : P] = torch.as_tensor(p, dtype=torch.long)
    seq = seq.to(device)
    start = torch.tensor([P - n for n in lengths], device=device)
    stops = torch.as_tensor(list(stop_tokens), dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)

    def window(end: int) -> torch.Tensor:
        # The last W tokens afresh: positions restart, as in an uncached model.
        s = (start - (end - W)).clamp(min=0)
        cache = KVCache.for_model(model, B, W, start=s)
        return model(seq[:, end - W : end], cache=cache, last_only=True)

    cache: KVCache | None = None
    if P <= W:
        # The last token needs no cache slot: it is returned, never fed.
        cache = KVCache.for_model(model, B, min(P + max_new_tokens - 1, W), start=start)
        logits = model(seq[:, :P], cache=cache, last_only=True)
    else:
        logits = window(P)
    n = 0
    for i in range(max_new_tokens):
        nxt = next_tokens(
            logits[:, -1], temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        if stops.numel():
            nxt = nxt.masked_fill(done, pad_id)
        seq[:, P + i] = nxt
        n = i + 1
        if stops.numel():
            done |= torch.isin(nxt, stops)
            if bool(done.all()):
                break
        if n == max_new_tokens:
            break
        if cache is not None and cache.length < cache.capacity:
            logits = model(nxt[:, None], cache=cache, last_only=True)
        else:
            cache = None
            logits = window(P + n)
    out = seq[:, P : P + n].tolist()
    if stops.numel():
        stop_set = set(stops.tolist())
        for row in out:
            end = next((j for j, t in enumerate(row) if t in stop_set), None)
            if end is not None:
                del row[end + 1 :]
    return out


def sample(
    model: Decoder,
    prompt_ids: list[int],
    max_new_tokens: int = 100,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    stop_id: int | None = None,
) -> list[int]:
    """The new token ids after one prompt (:func:`generate` of one row);
    stops early at ``stop_id``."""
    if not prompt_ids:
        raise ValueError("the prompt encodes to no tokens")
    return generate(
        model,
        [prompt_ids],
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        stop_tokens=() if stop_id is None else (stop_id,),
        generator=generator,
    )[0]


def codec(
    tokenizer_path, vocab_size: int
) -> tuple[Callable[[str], list[int]], Callable[[list[int]], str], int | None]:
    """(encode, decode, end-of-text id) for a run: its tokenizer, or UTF-8 bytes."""
    if tokenizer_path is not None:
        from fastllm.tokenizer import Tokenizer

        tok = Tokenizer.from_file(tokenizer_path)
        return tok.encode_ordinary, tok.decode, tok.special_tokens.get("<|endoftext|>")
    if vocab_size < 256:
        raise ValueError(
            f"the run saved no tokenizer.json and model.vocab_size={vocab_size} < 256: "
            "cannot encode text as bytes"
        )
    return (
        lambda text: list(text.encode("utf-8")),
        lambda ids: bytes(i for i in ids if i < 256).decode("utf-8", errors="replace"),
        None,
    )


@dataclass(frozen=True)
class GenerateConfig(Section):
    """What ``python -m fastllm.generate`` samples (the ``[generate]`` table)."""

    table = "generate"

    checkpoint: str = knob("", "a checkpoint folder or a run's out_dir")
    prompt: str = knob("", "text to continue (empty: start from end-of-text)")
    max_new_tokens: int = knob(100, "tokens to generate per sample")
    temperature: float = knob(0.8, "softmax temperature; 0 = greedy")
    top_k: int = knob(50, "keep the k most likely tokens; 0 = all")
    top_p: float = knob(1.0, "keep the smallest set of tokens holding this probability; 1 = all")
    num_samples: int = knob(1, "samples of the prompt, generated as one batch")
    seed: int = knob(0, "seed of the sampling generator")
    device: str = knob("cpu", "torch device to run on")

    def validate(self) -> None:
        check(
            self.max_new_tokens >= 0, "max_new_tokens", f"must be >= 0, got {self.max_new_tokens}"
        )
        check(self.temperature >= 0, "temperature", f"must be >= 0, got {self.temperature}")
        check(self.top_k >= 0, "top_k", f"must be >= 0, got {self.top_k}")
        check(0 < self.top_p <= 1, "top_p", f"must be in (0, 1], got {self.top_p}")
        check(self.num_samples >= 1, "num_samples", f"must be >= 1, got {self.num_samples}")


@dataclass(frozen=True)
class GenerateRun(Section):
    """The command line of ``python -m fastllm.generate``."""

    generate: GenerateConfig = section(GenerateConfig)


FLAGS = {
    "--checkpoint": ("generate.checkpoint", "a checkpoint folder or a run's out_dir"),
    "--prompt": ("generate.prompt", "text to continue"),
    "--max-new-tokens": ("generate.max_new_tokens", "tokens to generate"),
    "--temperature": ("generate.temperature", "0 = greedy"),
    "--top-k": ("generate.top_k", "keep the k most likely tokens; 0 = all"),
    "--top-p": ("generate.top_p", "nucleus probability; 1 = all"),
    "--num-samples": ("generate.num_samples", "samples of the prompt"),
    "--seed": ("generate.seed", "sampling seed"),
    "--device": ("generate.device", "torch device"),
}


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        run = cli(
            GenerateRun,
            argv,
            prog="python -m fastllm.generate",
            description=__doc__.split("\n\n")[0],
            flags=FLAGS,
        )
        if run is None:
            return 0
        from fastllm.train.checkpoint import find_tokenizer, load_model

        c = run.generate
        # Checked here, not in validate(): the defaults (what --describe shows) have none.
        check(bool(c.checkpoint), "generate.checkpoint", "required (--checkpoint DIR)")
        try:
            model, _, folder = load_model(c.checkpoint, c.device)
            encode, decode, eot = codec(find_tokenizer(folder), model.config.vocab_size)
            prompt = encode(c.prompt) if c.prompt else ([eot] if eot is not None else [0])
            if not prompt:
                raise ValueError("the prompt encodes to no tokens")
            g = torch.Generator(device=c.device).manual_seed(c.seed)
            rows = generate(
                model.eval(),
                [prompt] * c.num_samples,
                c.max_new_tokens,
                temperature=c.temperature,
                top_k=c.top_k or None,
                top_p=c.top_p if c.top_p < 1 else None,
                stop_tokens=() if eot is None else (eot,),
                generator=g,
            )
        except (ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for i, new in enumerate(rows):
            if c.num_samples > 1:
                print(f"--- sample {i + 1}")
            print(c.prompt + decode(new))
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
