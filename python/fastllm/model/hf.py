"""Export to Hugging Face: ``model.safetensors`` + ``config.json`` that
``transformers.LlamaForCausalLM.from_pretrained`` loads with the same logits.

The decoder is Llama's architecture under other names, and RoPE already uses
HF's rotate-half layout, so the export is a renaming (no permutation of q/k):

    tok_embeddings.weight           → model.embed_tokens.weight
    layers.i.attention.w{q,k,v,o}   → model.layers.i.self_attn.{q,k,v,o}_proj
    layers.i.feed_forward.w1/w3/w2  → model.layers.i.mlp.gate_proj/up_proj/down_proj
    layers.i.attention_norm         → model.layers.i.input_layernorm
    layers.i.ffn_norm               → model.layers.i.post_attention_layernorm
    norm                            → model.norm
    output                          → lm_head (left out when tied)

    python -m fastllm.model.hf --checkpoint runs/tiny --out runs/tiny/hf
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from fastllm.config import Section, check, cli, knob, run_cli, section
from fastllm.io.atomic import atomic_dir, write_bytes_atomic, write_json_atomic
from fastllm.model import Decoder, ModelConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def hf_config(
    c: ModelConfig, dtype: str = "float32", special_tokens: dict[str, int] | None = None
) -> dict[str, Any]:
    """A ``LlamaConfig`` as JSON (valid for transformers 4.x and 5.x)."""
    specials = special_tokens or {}
    eos = specials.get("<|endoftext|>", next(iter(specials.values()), None))
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c.vocab_size,
        "hidden_size": c.dim,
        "intermediate_size": c.hidden_dim,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.kv_heads,
        "head_dim": c.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": c.max_seq_len,
        "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
        "rope_scaling": None,
        "tie_word_embeddings": c.tie_embeddings,
        # HF's attention_bias puts a bias on o_proj too; ours is exported as zeros.
        "attention_bias": c.qkv_bias,
        "mlp_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": c.init_std,
        "bos_token_id": eos,
        "eos_token_id": eos,
        "pad_token_id": None,
        "use_cache": True,
        "torch_dtype": dtype,
        "dtype": dtype,
    }


def hf_state_dict(model: Decoder, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The model's weights under Hugging Face Llama names (contiguous copies)."""
    c = model.config
    sd = {
        k.replace("_orig_mod.", "").replace("module.", ""): v for k, v in model.state_dict().items()
    }
    out = {
        "model.embed_tokens.weight": sd["tok_embeddings.weight"],
        "model.norm.weight": sd["norm.weight"],
    }
    if not c.tie_embeddings:
        out["lm_head.weight"] = sd["output.weight"]
    for i in range(c.n_layers):
        src, dst = f"layers.{i}.", f"model.layers.{i}."
        for ours, theirs in (
            ("wq", "q_proj"),
            ("wk", "k_proj"),
            ("wv", "v_proj"),
            ("wo", "o_proj"),
        ):
            out[f"{dst}self_attn.{theirs}.weight"] = sd[f"{src}attention.{ours}.weight"]
            if c.qkv_bias:
                bias = sd.get(f"{src}attention.{ours}.bias")
                out[f"{dst}self_attn.{theirs}.bias"] = (
                    bias
                    if bias is not None
                    else torch.zeros(c.dim, dtype=sd[f"{src}attention.wo.weight"].dtype)
                )
        for ours, theirs in (("w1", "gate_proj"), ("w3", "up_proj"), ("w2", "down_proj")):
            out[f"{dst}mlp.{theirs}.weight"] = sd[f"{src}feed_forward.{ours}.weight"]
        out[f"{dst}input_layernorm.weight"] = sd[f"{src}attention_norm.weight"]
        out[f"{dst}post_attention_layernorm.weight"] = sd[f"{src}ffn_norm.weight"]
    return {k: v.detach().to("cpu", dtype).contiguous().clone() for k, v in out.items()}


def export_hf(
    model: Decoder,
    out_dir: str | Path,
    *,
    tokenizer_path: str | Path | None = None,
    dtype: str = "float32",
) -> Path:
    """Write ``out_dir`` (atomically: a temporary folder renamed when complete)
    with model.safetensors, config.json and, if given, tokenizer.json."""
    from safetensors.torch import save_file

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    out_dir = Path(out_dir)
    # Every file in a temporary folder, fsynced and renamed as one (io.atomic).
    with atomic_dir(out_dir) as tmp:
        specials: dict[str, int] = {}
        if tokenizer_path is not None:
            write_bytes_atomic(tmp / "tokenizer.json", Path(tokenizer_path).read_bytes())
            specials = _special_tokens(Path(tokenizer_path))
        save_file(
            hf_state_dict(model, DTYPES[dtype]), tmp / "model.safetensors", metadata={"format": "pt"}
        )
        config = hf_config(model.config, dtype, specials)
        write_json_atomic(tmp / "config.json", config)
        if specials:
            eos = config["eos_token_id"]
            name = next(k for k, v in specials.items() if v == eos)
            write_json_atomic(
                tmp / "tokenizer_config.json",
                {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": name, "bos_token": name},
            )
    return out_dir


def _special_tokens(path: Path) -> dict[str, int]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {t["content"]: t["id"] for t in data.get("added_tokens", []) if t.get("special", True)}


@dataclass(frozen=True)
class ExportConfig(Section):
    """What ``python -m fastllm.train.export`` writes (the ``[export]`` table)."""

    table = "export"

    checkpoint: str = knob("", "a checkpoint folder or a run's out_dir")
    out: str = knob("", "the Hugging Face model folder to write")
    dtype: Literal["float32", "bfloat16", "float16"] = knob("float32", "dtype of the weights")

    def validate(self) -> None:
        check(bool(self.checkpoint), "checkpoint", "required (--checkpoint DIR)")
        check(bool(self.out), "out", "required (--out DIR)")


@dataclass(frozen=True)
class ExportRun(Section):
    """The command line of ``python -m fastllm.train.export``."""

    export: ExportConfig = section(ExportConfig)


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        run = cli(
            ExportRun,
            argv,
            prog="python -m fastllm.train.export",
            description=__doc__.split("\n\n")[0],
            config_flag=False,
            flags={
                "--checkpoint": ("export.checkpoint", "a checkpoint folder or a run's out_dir"),
                "--out": ("export.out", "the Hugging Face model folder to write"),
                "--dtype": ("export.dtype", "float32, bfloat16 or float16"),
            },
        )
        if run is None:
            return 0
        from fastllm.train.checkpoint import find_tokenizer, load_model

        c = run.export
        try:
            model, _, folder = load_model(c.checkpoint)
        except (ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        out = export_hf(model, c.out, tokenizer_path=find_tokenizer(folder), dtype=c.dtype)
        print(f"exported {folder} → {out}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
