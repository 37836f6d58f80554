"""The final AAC is encoded in cached chunks and spliced: exact length, no offset, clean joins,
and a re-encode touches only the chunks whose samples changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from media import aac, ffmpeg
from storage.file_memo import read_checked

RATE = 48000


def _source(path: Path, seconds: float) -> np.ndarray:
    """Pink noise under a tone, stereo s16le: busy enough that a bad splice would show."""
    samples = int(seconds * RATE) - 1000          # not a whole number of AAC frames
    ffmpeg.run(["-f", "lavfi", "-i", f"anoisesrc=r={RATE}:d={seconds}:a=0.1:c=pink:seed=7",
                "-f", "lavfi", "-i", f"sine=f=330:r={RATE}:d={seconds}",
                "-filter_complex", f"[0][1]amix=inputs=2,atrim=end_sample={samples}", "-ac", "2",
                "-f", "s16le", str(path)])
    return np.fromfile(path, "<i2").reshape(-1, 2).astype(float)


@pytest.fixture
def small_chunks(monkeypatch):
    """1.37 s chunks with 0.34 s of pre-roll: several joins in a few seconds of audio."""
    monkeypatch.setattr(aac, "CHUNK_FRAMES", 64)
    monkeypatch.setattr(aac, "PRE_ROLL", 16 * aac.FRAME)


def _decode(path: Path, out: Path) -> np.ndarray:
    ffmpeg.run(["-i", str(path), "-f", "s16le", "-ac", "2", str(out)])
    return np.fromfile(out, "<i2").reshape(-1, 2).astype(float)


def test_chunked_aac_is_exact_in_length_and_time_and_its_joins_are_clean(tmp_path, small_chunks):
    pcm = tmp_path / "a.raw"
    source = _source(pcm, 6.0)
    out = aac.encode(pcm, RATE, tmp_path / "a.m4a", folder=tmp_path / "cache")
    decoded = _decode(out, tmp_path / "a.dec")
    assert len(decoded) == len(source)                     # the encoder's priming and padding are trimmed
    size = 64 * aac.FRAME
    lags = [int(np.argmax([np.dot(decoded[2 * size + lag:3 * size + lag, 0], source[2 * size:3 * size, 0])
                           for lag in range(-8, 9)])) - 8]
    assert lags == [0]                                     # no offset against the PCM
    error = decoded - source
    joins = range(size, len(source) - 2048, size)
    near = np.concatenate([error[j - 1024:j + 1024] for j in joins])
    away = np.concatenate([error[j + 8192:j + 8192 + 2048] for j in joins if j + 10240 < len(source)])
    rms = lambda x: float(np.sqrt((x ** 2).mean()))  # noqa: E731
    assert rms(near) < 1.5 * rms(away)                     # a join codes like any other second
    assert 20 * np.log10(rms(source) / rms(error)) > 15    # and the whole is a faithful encode


def test_a_second_encode_reuses_every_chunk_and_an_edit_reencodes_only_its_own(tmp_path, monkeypatch, small_chunks):
    pcm = tmp_path / "a.raw"
    source = _source(pcm, 8.0)
    cache = tmp_path / "cache"
    calls = []
    original = aac._encode_chunk
    monkeypatch.setattr(aac, "_encode_chunk", lambda *a: calls.append(a[-1]) or original(*a))
    first = aac.encode(pcm, RATE, tmp_path / "1.m4a", folder=cache)
    chunks = len(aac.chunk_bounds(len(source)))
    assert len(calls) == chunks > 4
    calls.clear()
    again = aac.encode(pcm, RATE, tmp_path / "2.m4a", folder=cache)
    assert calls == [] and again.read_bytes() == first.read_bytes()
    edited = source.copy()
    inside = 3 * 64 * aac.FRAME - 10000                   # in chunk 2, and in chunk 3's pre-roll
    edited[inside:inside + 2000] = 0
    edited.astype("<i2").tofile(pcm)
    out = aac.encode(pcm, RATE, tmp_path / "3.m4a", folder=cache)
    assert len(calls) == 1                                # chunk 2 only: chunk 3's own audio is the same
    # chunk 3 was kept from an encode whose pre-roll heard other audio: it still joins cleanly
    decoded = _decode(out, tmp_path / "3.dec")
    assert len(decoded) == len(edited)
    error = decoded - edited
    join = 3 * 64 * aac.FRAME
    rms = lambda x: float(np.sqrt((x ** 2).mean()))  # noqa: E731
    assert rms(error[join - 1024:join + 1024]) < 1.5 * rms(error[join + 8192:join + 8192 + 2048])
    assert rms(error[join - 1024:join + 1024]) < 1.5 * rms(error[join - 30000:join - 28000])
    # and a change reaching into a chunk's boundary frames makes that chunk again
    calls.clear()
    edited[join - 1500:join - 1000] = 0
    edited.astype("<i2").tofile(pcm)
    aac.encode(pcm, RATE, tmp_path / "4.m4a", folder=cache)
    assert len(calls) == 2


def test_no_samples_is_an_error(tmp_path):
    pcm = tmp_path / "empty.raw"
    pcm.write_bytes(b"")
    with pytest.raises(ffmpeg.FFmpegError, match="no audio samples"):
        aac.encode(pcm, RATE, tmp_path / "x.m4a", folder=tmp_path / "cache")


def test_a_gain_is_applied_on_the_way_into_the_encoder_and_keys_its_own_chunks(tmp_path, small_chunks):
    pcm = tmp_path / "a.raw"
    source = _source(pcm, 4.0)
    cache = tmp_path / "cache"
    plain = _decode(aac.encode(pcm, RATE, tmp_path / "0.m4a", folder=cache), tmp_path / "0.dec")
    chunks = len(list(cache.glob("*.m4a")))
    quieter = _decode(aac.encode(pcm, RATE, tmp_path / "6.m4a", folder=cache, gain=-6.0), tmp_path / "6.dec")
    assert len(list(cache.glob("*.m4a"))) == 2 * chunks          # another gain, other chunks
    assert len(quieter) == len(plain) == len(source)
    rms = lambda x: float(np.sqrt((x ** 2).mean()))  # noqa: E731
    assert 20 * np.log10(rms(quieter) / rms(plain)) == pytest.approx(-6.0, abs=0.05)


def test_a_track_is_spliced_from_encodes_already_under_way(tmp_path, monkeypatch, small_chunks):
    """Chunks an encode made ahead is working on are waited for, not encoded twice; one whose
    encode failed is encoded again, once; the track is the one a plain encode makes; an encode
    made ahead for other samples is cancelled where it has not begun."""
    import threading
    from collections import Counter
    from concurrent.futures import Future

    pcm = tmp_path / "a.raw"
    _source(pcm, 6.0)
    plain = aac.encode(pcm, RATE, tmp_path / "plain.m4a", folder=tmp_path / "plain")
    names = [job[4].name for job in aac.start(pcm, RATE, folder=tmp_path / "plain").jobs]   # keys, not folders
    assert len(names) > 3

    calls, gate = [], threading.Event()
    original = aac._encode_chunk

    def encoder(*a):
        gate.wait(10)                      # the encodes ahead are still running when encode() starts
        calls.append(a[-2].name)
        if a[-2].name == names[1] and calls.count(names[1]) == 1:
            raise ffmpeg.FFmpegError("the encoder fell over")
        return original(*a)

    monkeypatch.setattr(aac, "_encode_chunk", encoder)
    cache = tmp_path / "cache"
    ahead = aac.start(pcm, RATE, folder=cache, workers=2)
    threading.Timer(0.3, gate.set).start()
    keyed = aac.start
    monkeypatch.setattr(aac, "start", lambda *a, **k: pytest.fail("the same samples were read and keyed again"))
    out = aac.encode(pcm, RATE, tmp_path / "out.m4a", folder=cache, ahead=ahead)
    assert Counter(calls) == Counter(names + [names[1]])
    monkeypatch.setattr(aac, "start", keyed)

    stranger: Future = Future()            # an encode ahead for samples this track does not have
    elsewhere = aac.Encoding([], {tmp_path / "x.m4a": stranger}, lambda job: None, ("other samples",))
    aac.encode(pcm, RATE, tmp_path / "again.m4a", folder=cache, ahead=elsewhere)
    assert stranger.cancelled()
    assert np.array_equal(_decode(out, tmp_path / "out.dec"), _decode(plain, tmp_path / "plain.dec"))


@pytest.mark.parametrize("damage", ["cut short", "not media"])
def test_a_cached_chunk_that_cannot_be_read_is_encoded_again(tmp_path, small_chunks, damage, caplog):
    """A chunk kept in the cache and later damaged (a crash, a full disk) is made again, once,
    instead of failing every later render of the production."""
    pcm = tmp_path / "a.raw"
    source = _source(pcm, 5.0)
    cache = tmp_path / "cache"
    first = aac.encode(pcm, RATE, tmp_path / "1.m4a", folder=cache)
    chunk = sorted(cache.glob("*.m4a"), key=lambda p: p.stat().st_mtime_ns)[1]
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) * 2 // 3] if damage == "cut short" else b"junk" * 100)
    again = aac.encode(pcm, RATE, tmp_path / "2.m4a", folder=cache)
    assert again.read_bytes() == first.read_bytes()
    assert chunk.read_bytes() == data
    assert f"the cached AAC chunk {chunk.name} cannot be read" in caplog.text
    assert len(_decode(again, tmp_path / "2.dec")) == len(source)


def test_each_chunk_measures_its_own_audio_and_no_peak_of_the_track_is_missed(tmp_path, small_chunks):
    """A chunk's true peak is measured from its own audio (and the frames at its joins), not its
    pre-roll, which is the previous chunk's audio and measured there: the largest of the chunks'
    peaks is still the decoded track's."""
    from media.loudness import true_peak

    size = 64 * aac.FRAME
    samples = 4 * size + 777
    rng = np.random.default_rng(11)
    audio = rng.normal(0, 0.02, (samples, 2))
    click = 2 * size - size // 10                     # the end of chunk 1: chunk 2's pre-roll
    audio[click:click + 48] = 0.9
    pcm = tmp_path / "a.raw"
    (audio * 32767).astype("<i2").tofile(pcm)
    cache = tmp_path / "cache"
    out, peak = aac.encode_track(pcm, RATE, tmp_path / "a.m4a", folder=cache)
    largest = peak()                                  # (waits for every chunk's measure)
    jobs = aac.start(pcm, RATE, folder=cache).jobs
    chunk_peaks = [float(read_checked(aac._peak_file(job[4]))) for job in jobs]   # kept behind their digest
    assert chunk_peaks[1] > -2 and chunk_peaks[2] < chunk_peaks[1] - 20     # the click is chunk 1's alone
    # (within the spread of decoding itself: the decoder's noise substitution draws from a random
    # state that depends on every packet before, so the same packets decode a little differently
    # in the chunk and in the track; here up to 0.4 dB at the click, with or without the pre-roll)
    assert abs(largest - true_peak(out)) <= 0.5
