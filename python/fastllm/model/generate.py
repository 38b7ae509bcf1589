"""``python -m fastllm.model.generate``: sample text from a training checkpoint.

    python -m fastllm.model.generate --checkpoint runs/tiny --prompt "def " --max-new-tokens 200

The model is rebuilt from the config saved with the checkpoint; text is
encoded with the run's ``tokenizer.json`` when it saved one, else as UTF-8
bytes (the embedded byte-level corpus). Sampling recomputes the whole window
each token (no KV cache): simple and exact, and fast enough for the small
models trained on one machine; the window is cut to ``model.max_seq_len``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch

from fastllm.model import Decoder


@torch.no_grad()
def sample(
    model: Decoder,
    prompt_ids: list[int],
    max_new_tokens: int = 100,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    stop_id: int | None = None,
) -> list[int]:
    """The new token ids after ``prompt_ids``. ``temperature`` 0 is greedy;
    ``top_k`` keeps the k most likely tokens; stops early at ``stop_id``."""
    if temperature < 0:
        raise ValueError(f"--temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {top_k}")
    if not prompt_ids:
        raise ValueError("the prompt encodes to no tokens")
    device = next(model.parameters()).device
    window = model.config.max_seq_len
    ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    out: list[int] = []
    for _ in range(max_new_tokens):
        logits = model(ids[:, -window:])[0, -1].float()
        if temperature == 0:
            nxt = int(logits.argmax())
        else:
            logits = logits / temperature
            if top_k is not None and top_k < logits.numel():
                kth = torch.topk(logits, top_k).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits, dim=-1)
            nxt = int(torch.multinomial(probs.cpu(), 1, generator=generator))
        out.append(nxt)
        if stop_id is not None and nxt == stop_id:
            break
        ids = torch.cat([ids, torch.tensor([[nxt]], device=device)], dim=1)
    return out


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m fastllm.model.generate", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--checkpoint", required=True, help="a checkpoint folder or a run's out_dir")
    ap.add_argument("--prompt", default="", help="text to continue")
    ap.add_argument("--max-new-tokens", type=int, default=100)
    ap.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    ap.add_argument("--top-k", type=int, default=50, help="keep the k most likely tokens; 0 = all")
    ap.add_argument("--num-samples", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    from fastllm.train.checkpoint import find_tokenizer, load_model

    try:
        model, _, folder = load_model(args.checkpoint, args.device)
        encode, decode, eot = codec(find_tokenizer(folder), model.config.vocab_size)
        prompt = encode(args.prompt) if args.prompt else ([eot] if eot is not None else [0])
        g = torch.Generator().manual_seed(args.seed)
        for i in range(args.num_samples):
            new = sample(
                model,
                prompt,
                args.max_new_tokens,
                temperature=args.temperature,
                top_k=args.top_k or None,
                generator=g,
                stop_id=eot,
            )
            if args.num_samples > 1:
                print(f"--- sample {i + 1}")
            print(args.prompt + decode(new))
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
