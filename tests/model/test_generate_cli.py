"""python -m fastllm.model.generate: sampling from a training checkpoint."""

from __future__ import annotations

import torch

from fastllm.model import Decoder, ModelConfig
from fastllm.model.generate import main as generate_main
from fastllm.model.generate import sample
from fastllm.train import TokenStream, Trainer
from tests.train.helpers import config


def test_greedy_is_top1_and_sampling_is_seeded():
    torch.manual_seed(0)
    model = Decoder(
        ModelConfig(vocab_size=64, dim=32, n_layers=2, n_heads=4, max_seq_len=16)
    ).eval()
    greedy = sample(model, [1, 2, 3], 20, temperature=0)
    assert sample(model, [1, 2, 3], 20, temperature=1.0, top_k=1) == greedy
    # The window slides past max_seq_len: 3 + 20 tokens > 16.
    assert len(greedy) == 20
    a = sample(model, [1], 10, generator=torch.Generator().manual_seed(5))
    b = sample(model, [1], 10, generator=torch.Generator().manual_seed(5))
    assert a == b
    assert sample(model, [1, 2, 3], 10, temperature=0, stop_id=greedy[0]) == greedy[:1]


def test_generate_cli_continues_a_prompt_from_a_byte_level_run(tmp_path, capsys):
    text = b"hello world. " * 200
    tokens = torch.tensor(list(text))
    cfg = config(
        tmp_path,
        model={"vocab_size": 256},
        train={"steps": 30, "batch": 8, "seq": 16},
        optim={"lr": 2e-2},
    )
    Trainer(cfg, TokenStream.factory(tokens), log=lambda _: None).fit()
    capsys.readouterr()
    rc = generate_main(
        [
            "--checkpoint",
            str(tmp_path),
            "--prompt",
            "hello ",
            "--max-new-tokens",
            "12",
            "--temperature",
            "0",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert out.startswith("hello ")
    assert "world" in out  # the model learned the only continuation
