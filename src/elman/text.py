"""Character-level language models: a vocabulary, training windows, sampling.

The classic from-scratch exercise: read a text one character at a time, learn to
predict the next character (a softmax over the vocabulary, trained with
``loss="cross_entropy"``), then write new text by feeding each sampled character
back in::

    vocab = CharVocabulary.from_text(text)
    X, Y = next_character_windows(text, vocab, 25)
    model = elman.RNN(len(vocab), 64, len(vocab), loss="cross_entropy")
    model.fit(X, Y, epochs=20)
    print(generate(model, vocab, "The ", 200, temperature=0.7, rng=0))

The temperature divides the logits before the softmax: below 1 it sharpens the
distribution (0 always picks the most likely character), above 1 it flattens it.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from elman._typing import Array, ArrayLike, DTypeLike, FloatArray
from elman._validation import check_dtype, check_int
from elman.rnn import RNN

__all__ = ["CharVocabulary", "generate", "next_character_windows", "sample"]


class CharVocabulary:
    """The characters of a text and their integer ids (in sorted order).

    Parameters
    ----------
    chars : iterable of str
        The characters, each a string of length 1; duplicates are dropped and the
        rest sorted, so the same characters always give the same ids: to keep a
        vocabulary with its model, save ``"".join(vocab.chars)`` (for example in
        ``model.save(path, extra={"chars": ...})``) and rebuild it with
        ``CharVocabulary(chars)``.

    Examples
    --------
    >>> from elman.text import CharVocabulary
    >>> vocab = CharVocabulary.from_text("hello")
    >>> vocab.chars, vocab.encode("hole")
    (('e', 'h', 'l', 'o'), array([1, 3, 2, 0]))
    >>> vocab.decode([1, 0, 2, 2, 3])
    'hello'
    """

    def __init__(self, chars: Iterable[str]) -> None:
        if isinstance(chars, str):
            chars = list(chars)
        found = set()
        for char in chars:
            if not isinstance(char, str) or len(char) != 1:
                raise ValueError(f"chars must be single characters; got {char!r}")
            found.add(char)
        if not found:
            raise ValueError("chars is empty: a vocabulary needs at least one character")
        self.chars: tuple[str, ...] = tuple(sorted(found))
        self._ids = {char: index for index, char in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocabulary:
        """The vocabulary of every character that occurs in ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str; got {type(text).__name__}")
        return cls(text)

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, char: object) -> bool:
        return char in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocabulary) and other.chars == self.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    def __repr__(self) -> str:
        shown = "".join(self.chars[:40])
        more = f" (+{len(self.chars) - 40} more)" if len(self.chars) > 40 else ""
        return f"CharVocabulary({len(self.chars)} characters: {shown!r}{more})"

    def encode(self, text: str) -> Array:
        """Ids of the characters of ``text``, shape (len(text),), int64.

        Raises ValueError naming any character the vocabulary does not hold.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str; got {type(text).__name__}")
        try:
            return np.array([self._ids[char] for char in text], dtype=np.int64)
        except KeyError:
            unknown = sorted({char for char in text if char not in self._ids})
            raise ValueError(f"text holds characters that are not in the vocabulary: "
                             f"{''.join(unknown)!r}") from None

    def decode(self, ids: ArrayLike) -> str:
        """The text of a sequence of ids (any integer array_like of 1 dimension)."""
        array = np.asarray(ids)
        if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"ids must be a 1-D sequence of integers; got an array of "
                             f"shape {array.shape} and dtype {array.dtype}")
        if array.size and (array.min() < 0 or array.max() >= len(self.chars)):
            raise ValueError(f"ids must be in [0, {len(self.chars) - 1}]; got values from "
                             f"{array.min()} to {array.max()}")
        return "".join(self.chars[index] for index in array.tolist())

    def one_hot(self, text_or_ids: str | ArrayLike, *,
                dtype: DTypeLike = "float64") -> FloatArray:
        """One-hot rows: shape ids.shape + (len(vocab),), for a text or an id array.

        Parameters
        ----------
        text_or_ids : str or array_like of int
            A text (encoded first) or ids of any shape.
        dtype : {"float64", "float32"}, default "float64"
            Use the model's dtype.
        """
        dtype = check_dtype(dtype)
        if isinstance(text_or_ids, str):
            ids = self.encode(text_or_ids)
        else:
            ids = np.asarray(text_or_ids)
            if ids.size and not np.issubdtype(ids.dtype, np.integer):
                raise ValueError(f"ids must be integers; got dtype {ids.dtype}")
            if ids.size and (ids.min() < 0 or ids.max() >= len(self.chars)):
                raise ValueError(f"ids must be in [0, {len(self.chars) - 1}]")
        rows: FloatArray = np.eye(len(self.chars), dtype=dtype)[ids.astype(np.intp)]
        return rows


def next_character_windows(text: str, vocab: CharVocabulary, length: int, *,
                           stride: int | None = None,
                           dtype: DTypeLike = "float64") -> tuple[FloatArray, Array]:
    """Training windows for next-character prediction.

    Window i reads the characters ``text[s : s + length]`` (s = i * stride) as
    one-hot inputs, and its targets are the characters one step later,
    ``text[s + 1 : s + length + 1]``, as class ids: what a model with
    ``loss="cross_entropy"`` and ``return_sequences=True`` trains on.

    Parameters
    ----------
    text : str
    vocab : CharVocabulary
        Must hold every character of ``text``.
    length : int
        Steps per window (>= 1).
    stride : int, optional
        Characters between the starts of consecutive windows; ``length`` by
        default (windows that do not overlap).
    dtype : {"float64", "float32"}, default "float64"
        Of X (the model's dtype).

    Returns
    -------
    X : ndarray, shape (n, length, len(vocab))
    Y : ndarray of int64, shape (n, length)
    """
    if not isinstance(vocab, CharVocabulary):
        raise TypeError(f"vocab must be a CharVocabulary; got {type(vocab).__name__}")
    length = check_int("length", length, 1)
    stride = length if stride is None else check_int("stride", stride, 1)
    ids = vocab.encode(text)
    if ids.shape[0] < length + 1:
        raise ValueError(f"text has {ids.shape[0]} characters: too few for one window of "
                         f"length {length} and its next character ({length + 1} needed)")
    starts = np.arange(0, ids.shape[0] - length, stride)
    positions = starts[:, None] + np.arange(length)[None, :]
    return vocab.one_hot(ids[positions], dtype=dtype), ids[positions + 1]


def _check_temperature(temperature):
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.number)):
        raise TypeError(f"temperature must be a number; got {type(temperature).__name__}")
    temperature = float(temperature)
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be finite and >= 0 (0 picks the most likely "
                         f"class); got {temperature!r}")
    return temperature


def _probabilities(logits, temperature):
    """softmax(logits / temperature) along the last axis, in float64 (temperature >
    0). The largest logit becomes exp(0), so a tiny temperature gives a one-hot row,
    not NaN."""
    scaled = logits - logits.max(axis=-1, keepdims=True)
    with np.errstate(over="ignore"):
        scaled /= temperature
    weights = np.exp(scaled)
    return weights / weights.sum(axis=-1, keepdims=True)


def sample(logits: ArrayLike, *, temperature: float = 1.0,
           rng: int | np.random.Generator | None = None) -> int | Array:
    """Draw a class from ``softmax(logits / temperature)``.

    Parameters
    ----------
    logits : array_like, shape (classes,) or (batch, classes)
        Raw scores, as a model's head returns them.
    temperature : float >= 0, default 1.0
        0 takes the largest logit (greedy); small values come close to that, 1
        samples from the model's own distribution, larger values flatten it.
    rng : int, numpy.random.Generator or None
        Seed or generator of the draw.

    Returns
    -------
    int, or ndarray of int64 of shape (batch,)
    """
    temperature = _check_temperature(temperature)
    scores = np.asarray(logits, dtype=np.float64)
    if scores.ndim not in (1, 2) or scores.shape[-1] == 0:
        raise ValueError(f"logits must have shape (classes,) or (batch, classes); got "
                         f"{scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("logits contain NaN or inf")
    chosen = _draw(scores.reshape(-1, scores.shape[-1]), temperature,
                   np.random.default_rng(rng))
    if scores.ndim == 1:
        return int(chosen[0])
    drawn: Array = chosen
    return drawn


def _draw(scores, temperature, generator):
    """One class per row of scores (n, classes) float64, as ``sample`` describes."""
    if temperature == 0:
        return scores.argmax(axis=-1).astype(np.int64)
    cumulative = np.cumsum(_probabilities(scores, temperature), axis=-1)
    draws = generator.random((scores.shape[0], 1))
    # The first class whose cumulative probability exceeds the draw.
    chosen = (cumulative <= draws * cumulative[:, -1:]).sum(axis=-1)
    return np.minimum(chosen, scores.shape[-1] - 1).astype(np.int64)


def generate(model: RNN, vocab: CharVocabulary, seed_text: str, length: int, *,
             temperature: float = 1.0,
             rng: int | np.random.Generator | None = None) -> str:
    """Write ``length`` characters after ``seed_text``, one sampled character at a time.

    The model reads ``seed_text`` from a zero state; then each character is drawn
    from ``softmax(output / temperature)`` (see :func:`sample`) and fed back as the
    next one-hot input.

    Parameters
    ----------
    model : elman.RNN
        input_size and output_size equal to ``len(vocab)``; its outputs are the
        logits of the next character.
    vocab : CharVocabulary
    seed_text : str
        At least one character, all in ``vocab``.
    length : int
        Characters to write (>= 0).
    temperature : float >= 0, default 1.0
        0 is greedy (always the most likely character).
    rng : int, numpy.random.Generator or None
        Seed or generator: the same seed writes the same text.

    Returns
    -------
    str
        The ``length`` new characters (without ``seed_text``).
    """
    if not isinstance(model, RNN):
        raise TypeError(f"model must be an elman.RNN; got {type(model).__name__}")
    if not isinstance(vocab, CharVocabulary):
        raise TypeError(f"vocab must be a CharVocabulary; got {type(vocab).__name__}")
    size = len(vocab)
    if model.input_size != size or model.output_size != size:
        raise ValueError(f"the model must read and write one-hot characters of this "
                         f"vocabulary: input_size and output_size {size}; got input_size "
                         f"{model.input_size} and output_size {model.output_size}")
    if not isinstance(seed_text, str) or not seed_text:
        raise ValueError("seed_text must be a non-empty str (the model needs a first "
                         "character to read)")
    length = check_int("length", length, 0)
    temperature = _check_temperature(temperature)
    generator = np.random.default_rng(rng)
    outputs, state = model.forward(vocab.one_hot(seed_text, dtype=model.dtype),
                                   return_state=True)
    logits = outputs[-1] if model.return_sequences else outputs
    identity = np.eye(size, dtype=model.dtype)
    written = np.empty(length, dtype=np.int64)
    for step in range(length):
        scores = np.asarray(logits, dtype=np.float64).reshape(1, size)
        if not np.isfinite(scores).all():
            raise ValueError(f"the model's outputs became NaN or inf after {step} "
                             f"characters")
        char = int(_draw(scores, temperature, generator)[0])
        written[step] = char
        outputs, state = model.forward(identity[char:char + 1], state, return_state=True)
        logits = outputs[-1] if model.return_sequences else outputs
    return vocab.decode(written)
