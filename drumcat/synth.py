"""Synthesized drum one-shots: the demo archive, test fixtures, and the training set's Noise class.

Simple physical-ish recipes (pitch-swept sines, filtered noise, inharmonic partials), seeded so every
run writes the same audio.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 44_100

# soundfile format and subtype per extension; every format drumcat scans can be written.
WRITE_FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("WAV", "PCM_16"),
    "aif": ("AIFF", "PCM_16"),
    "aiff": ("AIFF", "PCM_24"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


def _time(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE


def _envelope(t: np.ndarray, decay: float, attack: float = 0.002) -> np.ndarray:
    return np.minimum(t / attack, 1.0) * np.exp(-t / decay)


def _highpass_noise(rng: np.random.Generator, n: int, cutoff: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[freqs < cutoff] = 0
    return np.fft.irfft(spectrum, n)


def _bandpass_noise(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return np.fft.irfft(spectrum, n)


def _sweep(t: np.ndarray, start_hz: float, end_hz: float, sweep_time: float) -> np.ndarray:
    freq = end_hz + (start_hz - end_hz) * np.exp(-t / sweep_time)
    return np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE)


def kick(rng: np.random.Generator) -> np.ndarray:
    t = _time(0.6)
    body = _sweep(t, rng.uniform(120, 180), rng.uniform(40, 55), 0.04) * _envelope(t, rng.uniform(0.12, 0.2))
    click = _highpass_noise(rng, t.size, 2000) * _envelope(t, 0.003) * 0.3
    return body + click


def snare(rng: np.random.Generator) -> np.ndarray:
    t = _time(0.4)
    tone = np.sin(2 * np.pi * rng.uniform(170, 220) * t) * _envelope(t, 0.05)
    wires = _bandpass_noise(rng, t.size, 1500, 9000) * _envelope(t, rng.uniform(0.08, 0.14))
    return 0.6 * tone + 0.8 * wires / np.abs(wires).max()


def hihat(rng: np.random.Generator) -> np.ndarray:
    t = _time(0.25)
    noise = _highpass_noise(rng, t.size, 7000)
    return noise / np.abs(noise).max() * _envelope(t, rng.uniform(0.02, 0.05))


def _metal(rng: np.random.Generator, t: np.ndarray, base: float, count: int) -> np.ndarray:
    ratios = rng.uniform(1.0, 8.0, count)
    return sum(np.sin(2 * np.pi * base * r * t + rng.uniform(0, 6.28)) for r in ratios) / count


def crash(rng: np.random.Generator) -> np.ndarray:
    t = _time(2.0)
    noise = _highpass_noise(rng, t.size, 3000)
    wash = noise / np.abs(noise).max() + 0.3 * _metal(rng, t, 400, 12)
    return wash * _envelope(t, rng.uniform(0.6, 1.0), attack=0.005)


def ride(rng: np.random.Generator) -> np.ndarray:
    t = _time(1.5)
    ping = _metal(rng, t, rng.uniform(500, 700), 6) * _envelope(t, 0.5)
    noise = _highpass_noise(rng, t.size, 5000)
    return ping + 0.2 * noise / np.abs(noise).max() * _envelope(t, 0.3)


def tom(rng: np.random.Generator) -> np.ndarray:
    t = _time(0.8)
    return _sweep(t, rng.uniform(180, 300), rng.uniform(80, 140), 0.1) * _envelope(t, rng.uniform(0.2, 0.35))


def clap(rng: np.random.Generator) -> np.ndarray:
    t = _time(0.4)
    noise = _bandpass_noise(rng, t.size, 800, 5000)
    bursts = sum(_envelope(np.clip(t - d, 0, None), 0.008) * (t >= d) for d in (0, 0.011, 0.022))
    return noise / np.abs(noise).max() * (bursts + _envelope(np.clip(t - 0.03, 0, None), 0.1) * (t >= 0.03))


def noise_burst(rng: np.random.Generator) -> np.ndarray:
    t = _time(rng.uniform(0.2, 1.0))
    return rng.standard_normal(t.size) * _envelope(t, rng.uniform(0.05, 0.4))


INSTRUMENTS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "Kick": kick,
    "Snare": snare,
    "Hihat": hihat,
    "Crash": crash,
    "Ride": ride,
    "Tom": tom,
    "Clap": clap,
    "Noise": noise_burst,
}


def render(instrument: str, seed: int) -> np.ndarray:
    """One normalized one-shot (peak -1 dBFS) of `instrument`, deterministic for a seed."""
    samples = INSTRUMENTS[instrument](np.random.default_rng(seed))
    return (samples / max(np.abs(samples).max(), 1e-9) * 0.89).astype(np.float32)


def write_sample(path: Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write a one-shot in the format its extension names."""
    file_format, subtype = WRITE_FORMATS[path.suffix.lower().lstrip(".")]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, sample_rate, format=file_format, subtype=subtype)
    return path
