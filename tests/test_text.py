"""elman.text: the character vocabulary, next-character windows, sampling, generation."""

import numpy as np
import pytest

import elman
from elman.text import CharVocabulary, generate, next_character_windows, sample

TEXT = "Beautiful is better than ugly.\nExplicit is better than implicit.\n"


# ----------------------------------------------------------------------- vocabulary
def test_vocabulary_round_trip():
    vocab = CharVocabulary.from_text(TEXT)
    assert vocab.chars == tuple(sorted(set(TEXT)))
    assert len(vocab) == len(set(TEXT))
    ids = vocab.encode(TEXT)
    assert ids.dtype == np.int64 and ids.shape == (len(TEXT),)
    assert vocab.decode(ids) == TEXT
    assert vocab.decode(list(ids)) == TEXT
    assert [vocab.chars[i] for i in ids[:4]] == list("Beau")
    assert "B" in vocab and "z" not in vocab
    assert CharVocabulary(reversed(vocab.chars)) == vocab   # ids do not depend on order
    assert CharVocabulary("aab").chars == ("a", "b")
    assert "CharVocabulary(" in repr(vocab)


def test_one_hot():
    vocab = CharVocabulary.from_text("abc")
    rows = vocab.one_hot("cab")
    np.testing.assert_array_equal(rows, [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    assert rows.dtype == np.float64
    grid = vocab.one_hot(np.array([[0, 2], [1, 1]]), dtype="float32")
    assert grid.shape == (2, 2, 3) and grid.dtype == np.float32
    np.testing.assert_array_equal(grid.argmax(axis=-1), [[0, 2], [1, 1]])
    assert vocab.one_hot("").shape == (0, 3)


def test_vocabulary_errors():
    vocab = CharVocabulary.from_text("abc")
    with pytest.raises(ValueError, match="not in the vocabulary: 'xz'"):
        vocab.encode("axbz")
    with pytest.raises(ValueError, match=r"ids must be in \[0, 2\]"):
        vocab.decode([0, 3])
    with pytest.raises(ValueError, match="1-D sequence of integers"):
        vocab.decode([0.5])
    with pytest.raises(ValueError, match=r"ids must be in \[0, 2\]"):
        vocab.one_hot([-1])
    with pytest.raises(ValueError, match="single characters"):
        CharVocabulary(["ab"])
    with pytest.raises(ValueError, match="empty"):
        CharVocabulary("")
    with pytest.raises(TypeError, match="str"):
        CharVocabulary.from_text(b"abc")


def test_next_character_windows():
    vocab = CharVocabulary.from_text(TEXT)
    X, Y = next_character_windows(TEXT, vocab, 10, stride=4)
    starts = range(0, len(TEXT) - 10, 4)
    assert X.shape == (len(starts), 10, len(vocab)) and Y.shape == (len(starts), 10)
    for i, s in enumerate(starts):
        assert vocab.decode(X[i].argmax(axis=1)) == TEXT[s:s + 10]
        assert vocab.decode(Y[i]) == TEXT[s + 1:s + 11]
    X, Y = next_character_windows(TEXT, vocab, 10, dtype="float32")
    assert X.dtype == np.float32 and X.shape[0] == len(range(0, len(TEXT) - 10, 10))
    with pytest.raises(ValueError, match="too few"):
        next_character_windows("abc", CharVocabulary("abc"), 3)
    with pytest.raises(ValueError, match="length"):
        next_character_windows(TEXT, vocab, 0)


# -------------------------------------------------------------------------- sample
def test_sample_follows_the_tempered_softmax():
    logits = np.array([2.0, 1.0, 0.0, -1.0])
    rng = np.random.default_rng(0)
    draws = sample(np.tile(logits, (40000, 1)), temperature=1.0, rng=rng)
    assert draws.shape == (40000,) and draws.dtype == np.int64
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 40000, expected, atol=0.01)
    hot = sample(np.tile(logits, (40000, 1)), temperature=2.0, rng=rng)
    tempered = np.exp(logits / 2) / np.exp(logits / 2).sum()
    np.testing.assert_allclose(np.bincount(hot, minlength=4) / 40000, tempered, atol=0.01)


def test_sample_temperature_zero_and_near_zero_is_greedy():
    logits = np.array([[0.3, 2.0, 1.9], [5.0, -1.0, 4.0]])
    np.testing.assert_array_equal(sample(logits, temperature=0), [1, 0])
    np.testing.assert_array_equal(sample(logits, temperature=1e-300, rng=1), [1, 0])
    assert sample(logits[0], temperature=0.0) == 1
    assert isinstance(sample(logits[0], rng=0), int)


def test_sample_is_deterministic_with_a_seed():
    logits = np.random.default_rng(3).normal(size=(50, 6))
    np.testing.assert_array_equal(sample(logits, rng=5), sample(logits, rng=5))
    assert not np.array_equal(sample(logits, rng=5), sample(logits, rng=6))


@pytest.mark.parametrize("temperature, error", [(-0.1, ValueError), (float("nan"), ValueError),
                                                (float("inf"), ValueError),
                                                ("hot", TypeError), (True, TypeError)])
def test_sample_rejects_bad_temperatures(temperature, error):
    with pytest.raises(error, match="temperature"):
        sample([1.0, 2.0], temperature=temperature)


def test_sample_rejects_bad_logits():
    with pytest.raises(ValueError, match="shape"):
        sample(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        sample([0.0, np.nan])


# ------------------------------------------------------------------------ generate
def trained_model(dtype="float64"):
    """A small model taught (with MSE on one-hot targets: any head works) to continue
    the text; generate only needs the head's outputs as scores."""
    vocab = CharVocabulary.from_text(TEXT)
    X, Y = next_character_windows(TEXT, vocab, 8, stride=2, dtype=dtype)
    model = elman.RNN(len(vocab), 32, len(vocab), seed=0, dtype=dtype)
    model.fit(X, vocab.one_hot(Y, dtype=dtype), epochs=60, batch_size=4, lr=0.01, seed=0)
    return model, vocab


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_generate_is_deterministic_and_greedy_at_zero(backend, dtype):
    model, vocab = trained_model(dtype)
    first = generate(model, vocab, "Beau", 40, temperature=0.8, rng=1)
    assert len(first) == 40 and set(first) <= set(vocab.chars)
    assert generate(model, vocab, "Beau", 40, temperature=0.8, rng=1) == first
    assert generate(model, vocab, "Beau", 40, temperature=0.8, rng=2) != first
    # Temperature 0: each character is the argmax of the model's output after
    # reading everything before it, whatever the generator.
    greedy = generate(model, vocab, "Beau", 30, temperature=0, rng=9)
    assert generate(model, vocab, "Beau", 30, temperature=0, rng=10) == greedy
    text = "Beau"
    for char in greedy:
        outputs = model.forward(vocab.one_hot(text, dtype=dtype))
        assert vocab.chars[int(outputs[-1].argmax())] == char
        text += char
    assert generate(model, vocab, "Beau", 0) == ""


def test_generate_temperature_changes_the_text_measurably(backend):
    """Cooler sampling follows the model's favourite more often: over many samples
    the share of greedy choices falls as the temperature rises."""
    model, vocab = trained_model()

    def greedy_share(temperature):
        agree = total = 0
        for seed in range(6):
            text = generate(model, vocab, "B", 60, temperature=temperature, rng=seed)
            outputs = model.forward(vocab.one_hot("B" + text[:-1]))
            agree += int(np.sum(outputs.argmax(axis=1) == vocab.encode(text)))
            total += len(text)
        return agree / total

    cold, warm, hot = greedy_share(0.05), greedy_share(0.3), greedy_share(3.0)
    assert cold > warm > hot
    assert cold > 0.95 and hot < 0.2


def test_generate_errors():
    model, vocab = elman.RNN(3, 4, 3, seed=0), CharVocabulary("abc")
    with pytest.raises(ValueError, match="input_size and output_size 4"):
        generate(model, CharVocabulary("abcd"), "a", 5)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        generate(model, vocab, "ax", 5)
    with pytest.raises(ValueError, match="seed_text"):
        generate(model, vocab, "", 5)
    with pytest.raises(ValueError, match="length"):
        generate(model, vocab, "a", -1)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, vocab, "a", 5, temperature=-1)
    with pytest.raises(TypeError, match="CharVocabulary"):
        generate(model, "abc", "a", 5)
    with pytest.raises(TypeError, match="elman.RNN"):
        generate(None, vocab, "a", 5)
