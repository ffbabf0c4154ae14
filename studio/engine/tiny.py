"""studio-tiny: the offline starter model, so every feature works with no network.

A small Llama-architecture model pretrained once, offline, on WordNet's English (assets/make_tiny.py,
docs/studio-tiny.md): it answers in varied English and stops at the end of its turn. Its bf16 weights,
byte-level BPE tokenizer and ChatML template (with ``{% generation %}`` markers) ship in
``assets/studio-tiny/``. ``ensure_studio_tiny(home)`` writes it once (a second) as an ordinary Hugging
Face model folder in fp32 safetensors, so adapters trained on it load with plain transformers + peft.
Widths are multiples of 64 (bitsandbytes' CPU 4-bit kernels need multiples of 32).
``save_random_llama`` builds seeded random models of other shapes for tests and benchmarks;
``ensure_tiny_t5`` and ``ensure_tiny_bert`` build the seeded, not pretrained, starters for the seq2seq and
masked-LM objectives.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from studio.settings import ASSETS

TINY_NAME = "studio-tiny"
T5_NAME = "studio-tiny-t5"  # the offline encoder-decoder: T5-shaped, seeded random init, studio-tiny's tokenizer
T5_SHAPE = {"d_model": 256, "d_kv": 64, "d_ff": 768, "num_layers": 3, "num_decoder_layers": 3, "num_heads": 4}
TINY_VERSION = 2
TOKENIZER_DIR = ASSETS / "studio-tiny"  # the pretrained studio-tiny: weights, tokenizer, template
SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]
TINY_SHAPE = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 2048}

# The studio's default chat template (ChatML), used by studio-tiny and by any base model whose
# tokenizer has none. The generation markers let TRL and transformers find assistant tokens.
DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}{{- message['content'] + '<|im_end|>' + '\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def train_tokenizer(corpus: list[str], vocab_size: int = 2048):
    """Train the byte-level BPE tokenizer shipped in assets (run by assets/make_assets.py)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>",
                                   bos_token=None, unk_token=None, model_max_length=2048)
    fast.chat_template = DEFAULT_CHAT_TEMPLATE
    return fast


def tiny_config(vocab_size: int, **overrides):
    from transformers import LlamaConfig

    shape = {**TINY_SHAPE, **overrides}
    return LlamaConfig(vocab_size=-(-vocab_size // 64) * 64, tie_word_embeddings=True, **shape)


def save_random_llama(target: Path, seed: int = 0, tokenizer_dir: Path = TOKENIZER_DIR, **shape) -> Path:
    """A random Llama-style model initialised from ``seed`` (no download), saved with the tiny tokenizer:
    tests and benchmarks use it for shapes other than studio-tiny's. The folder appears atomically."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = tiny_config(len(tokenizer), bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **shape)
    gen = torch.Generator().manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # our own seeded init, independent of global RNG state and library defaults
        for name, p in sorted(model.named_parameters()):
            if "norm" in name:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")],
        pad_token_id=tokenizer.pad_token_id)

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "studio_tiny.json").write_text(json.dumps({"random": True, "tokenizer": _tokenizer_hash(),
                                                          "seed": seed, **shape}))

    return _publish(target, fill)


def ensure_studio_tiny(home: Path) -> Path:
    """The studio-tiny folder under ``home/models``, written from the shipped weights on first use."""
    target = Path(home) / "models" / TINY_NAME
    marker = target / "studio_tiny.json"
    if marker.is_file():
        built = json.loads(marker.read_text())
        if built.get("version") == TINY_VERSION and built.get("tokenizer") == _tokenizer_hash():
            return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(TOKENIZER_DIR, dtype=torch.float32)
    model.config.dtype = torch.float32
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_DIR)

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "studio_tiny.json").write_text(json.dumps({"version": TINY_VERSION, "tokenizer": _tokenizer_hash(),
                                                          "pretrained": "assets/studio-tiny"}))

    return _publish(target, fill)


def _publish(target: Path, fill) -> Path:
    """Write a model folder aside, then rename it into place (another process finishing first is fine)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    fill(tmp)
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(tmp, target)
    except OSError:  # another process finished first; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@lru_cache(maxsize=1)
def _tokenizer_hash() -> str:
    """Rebuild a cached studio-tiny when the shipped tokenizer or weights change."""
    import hashlib

    h = hashlib.sha256()
    for name in ("tokenizer.json", "model.safetensors"):
        path = TOKENIZER_DIR / name
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def ensure_tiny_t5(home: Path, seed: int = 0) -> Path:
    """studio-tiny-t5 under ``home/models``: a small T5 (encoder-decoder, 9 M parameters) with studio-tiny's
    tokenizer, initialised from ``seed`` by T5's own rule (no download). Not pretrained: a seq2seq run teaches it
    the task from scratch, which the templated samples allow in a few hundred steps."""
    target = Path(home) / "models" / T5_NAME
    marker = target / "studio_tiny.json"
    if marker.is_file() and json.loads(marker.read_text()).get("tokenizer") == _tokenizer_hash():
        return target
    import torch
    from transformers import AutoTokenizer, GenerationConfig, T5Config, T5ForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = T5Config(vocab_size=-(-len(tokenizer) // 64) * 64, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id,
                      tie_word_embeddings=True, **T5_SHAPE)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
    model.generation_config = GenerationConfig(eos_token_id=[tokenizer.eos_token_id, end],
                                               pad_token_id=tokenizer.pad_token_id,
                                               decoder_start_token_id=tokenizer.pad_token_id)

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "studio_tiny.json").write_text(json.dumps({"random": True, "seed": seed, "tokenizer": _tokenizer_hash(),
                                                          **T5_SHAPE}))

    return _publish(target, fill)


BERT_NAME = "studio-tiny-bert"  # the small offline encoder: BERT-shaped, seeded random init, MiniLM's tokenizer
BERT_SHAPE = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 512,
              "max_position_embeddings": 512}


def ensure_tiny_bert(home: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """studio-tiny-bert under ``home/models``: a small BERT (4 layers, 128 wide; 4.6 M parameters, most of them
    the 30,522-token embedding) with all-MiniLM-L6-v2's uncased WordPiece tokenizer (it has a [MASK] token),
    initialised from ``seed`` by BERT's own rule. Not pretrained: studio-minilm is the pretrained encoder."""
    target = Path(home) / "models" / BERT_NAME
    if (target / "studio_tiny.json").is_file():
        return target
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = BertConfig(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, **BERT_SHAPE)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = BertForMaskedLM(config)

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "studio_tiny.json").write_text(json.dumps({"random": True, "seed": seed, **BERT_SHAPE}))

    return _publish(target, fill)
