"""Small BPE tokenizers written in code: CLIP's (``CLIPTokenizer``) and Qwen's (for FLUX.2).

Byte-level BPE trained on :data:`PORTRAIT_WORDS` (plus any extra words) so that portrait
vocabulary is single tokens and PEZ inversion over it reads as words. The CLIP one has CLIP's id
layout and end-of-word markers; the Qwen one is GPT-2 style (a leading space is part of a word)
with Qwen3's special tokens and a chat template that renders as Qwen3's does for one user turn.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

CLIP_MAX_LENGTH = 77
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
END_OF_WORD = "</w>"

# Words that must be single tokens, so PEZ inversion over this vocabulary reads as words.
_PORTRAIT_TEXT = """
    a an the of and or with in on at by for from to as is are be it its this that these those
    no not very more most less than into over under above below near behind between through
    up down out off new old one two three four five six seven eight nine ten many few some all
    portrait person face head headshot selfie man woman boy girl child adult people young elderly
    smiling smile serious calm happy sad angry looking camera eyes eye nose mouth lips hair beard
    skin cheeks forehead ears shoulders neck hands expression pose profile closeup close view
    front side full body upper bust half shot frame framing centered composition background
    watercolor oil acrylic pencil charcoal ink sketch drawing painting illustration render
    cartoon anime manga comic pixar disney studio ghibli chibi cel shaded shading toon 3d 2d
    digital art artwork artist artstation concept fantasy realistic photorealistic photo
    photograph photography cinematic film analog vintage retro modern minimalist abstract
    surreal pop impressionist expressionist cubist baroque renaissance classical gothic
    noir cyberpunk steampunk futuristic sci fi neon vaporwave synthwave pastel vibrant muted
    color colors colorful monochrome black white gray grey red orange yellow green blue purple
    pink brown gold golden silver teal cyan magenta warm cool dark light bright soft hard
    lighting light lit rim backlight backlit studio natural sunlight sunset sunrise dusk dawn
    night day moonlight candlelight volumetric dramatic moody ambient glow glowing shadow
    shadows contrast high low key exposure bokeh depth field focus sharp blurry blur detailed
    detail details intricate fine texture textured smooth clean lines line bold thin outline
    brush brushstrokes strokes stroke paint paper canvas wash bleed splash splatter wet dry
    layered layers flat gradient glossy matte subsurface scattering specular reflection
    rendered octane unreal engine blender cgi volumetric ray tracing global illumination
    quality best masterpiece award winning trending professional beautiful stunning elegant
    gorgeous cute lovely charming handsome pretty ugly deformed disfigured distorted bad poor
    worst jpeg artifacts artifact noise noisy grainy grain watermark signature text logo
    cropped crop extra missing fingers limbs duplicate mutated mutation lowres resolution
    resolutions 4k 8k hd uhd hdr sharpness clarity vivid rich deep saturated desaturated
    style styled stylized inspired by in the style of like similar tone tones toned palette
    hue hues shade tint vignette film grain lens mm 35mm 50mm 85mm f1.4 dslr canon nikon
    wide angle telephoto macro portraiture editorial fashion magazine cover vogue glamour
    character design sheet model figure figurine toy doll clay claymation plastic vinyl
    wood stone marble bronze metal glass crystal paper origami mosaic stained fabric
    flowers flower floral leaves garden forest trees sky clouds cloud sea ocean beach city
    street urban rural mountain mountains snow rain fog mist smoke fire water waves
    dress shirt suit jacket hat glasses scarf jewelry earrings necklace crown armor
    hero heroine knight warrior wizard witch princess prince king queen robot android elf
    whimsical dreamy ethereal magical mystical serene peaceful joyful playful friendly
    loose tight delicate gentle subtle strong heavy dynamic energetic expressive emotional
    trending on featured hyper ultra super highly extremely slightly
"""
PORTRAIT_WORDS: tuple[str, ...] = tuple(dict.fromkeys(_PORTRAIT_TEXT.split()))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode char table (the alphabet of byte-level BPE)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def _learn_merges(words: Iterable[str], end_of_word: str = END_OF_WORD) -> list[tuple[str, str]]:
    """Classic BPE training until every word is one symbol (ties broken by first seen).

    Training on the words themselves guarantees that CLIP's encoder (lowest-rank merge
    first) rebuilds each word as one token, and shared pieces ("ing</w>") come out as
    tokens of their own, so unseen words split into readable parts.
    """
    byte_char = _bytes_to_unicode()
    seqs = []
    for w in dict.fromkeys(words):  # dedupe, keep order
        chars = [byte_char[b] for b in w.encode("utf-8")]
        chars[-1] += end_of_word
        if len(chars) > 1:
            seqs.append(chars)
    merges: list[tuple[str, str]] = []
    while seqs:
        pairs: Counter[tuple[str, str]] = Counter()
        for s in seqs:
            pairs.update(itertools.pairwise(s))
        best = max(pairs, key=pairs.__getitem__)  # max() keeps the first of equal counts
        merges.append(best)
        merged = best[0] + best[1]
        next_seqs = []
        for s in seqs:
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            if len(out) > 1:
                next_seqs.append(out)
        seqs = next_seqs
    return merges


def _normalise_words(words: Iterable[str]) -> list[str]:
    """Lower-cased words as CLIP's pre-tokenizer would see them (letters-only runs)."""
    out = []
    for w in words:
        # CLIP splits "f1.4" into "f", "1", ".", "4": only letter runs can be whole tokens
        out.extend(re.findall(r"[^\W\d_]+", w.lower()))
    return out


def write_tiny_clip_tokenizer(directory: Path, extra_words: Iterable[str] = ()) -> Path:
    """Write a small CLIP BPE tokenizer (vocab.json, merges.txt) loadable by ``CLIPTokenizer``.

    Every byte has a token with and without ``</w>``, so any text tokenizes; the words of
    :data:`PORTRAIT_WORDS` and ``extra_words`` are single tokens. Ids follow CLIP's layout:
    bytes, bytes + ``</w>``, merges, then ``<|startoftext|>`` and ``<|endoftext|>`` last.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    alphabet = list(_bytes_to_unicode().values())
    merges = _learn_merges(_normalise_words([*PORTRAIT_WORDS, *extra_words]))
    tokens = alphabet + [c + END_OF_WORD for c in alphabet] + ["".join(m) for m in merges]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
    merge_lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (directory / "merges.txt").write_text("\n".join(merge_lines) + "\n", "utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (directory / "special_tokens_map.json").write_text(json.dumps(special), "utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": CLIP_MAX_LENGTH,
        "do_lower_case": True,
        **special,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config), "utf-8")
    return directory


# ----------------------------------------------------------------------------- Qwen (FLUX.2)

QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
QWEN_THINK = ("<think>", "</think>")
# Qwen3's chat template reduced to what Flux2KleinPipeline renders: one user turn, a generation
# prompt, and an empty thinking block when enable_thinking=False (the same text as Qwen3's).
QWEN_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


def write_tiny_qwen_tokenizer(directory: Path, extra_words: Iterable[str] = ()) -> Path:
    """Write a small Qwen2-class byte-level BPE tokenizer with Qwen3's chat template.

    Loadable with ``AutoTokenizer`` / ``Qwen2TokenizerFast.from_pretrained(directory)``; every
    byte has a token, so any text tokenizes; portrait words (with and without a leading
    space) are single tokens.
    """
    from transformers import Qwen2TokenizerFast

    directory = Path(directory)
    words = [w.lower() for w in (*PORTRAIT_WORDS, *extra_words, "user", "assistant")]
    merges = _learn_merges([f" {w}" for w in words] + words, end_of_word="")
    alphabet = list(_bytes_to_unicode().values())
    tokens = alphabet + ["".join(m) for m in merges]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    tokenizer = Qwen2TokenizerFast(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL[1:])})
    tokenizer.add_tokens(list(QWEN_THINK))
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    tokenizer.model_max_length = 40_960  # Qwen3's context; FLUX.2 reads the first 512
    tokenizer.save_pretrained(directory)
    return directory
