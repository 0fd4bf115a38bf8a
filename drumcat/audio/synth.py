"""Synthesized drum one-shots: the demo archive, test fixtures, and the training set's Noise class.

Analog drum-machine recipes (pitch-swept sines, Butterworth-filtered noise, the TR-808's six square
waves for metal), seeded so every run writes the same audio.
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


def time_axis(seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    return np.arange(int(seconds * rate)) / rate


def _envelope(t: np.ndarray, decay: float, attack: float = 0.001) -> np.ndarray:
    return np.minimum(t / attack, 1.0) * np.exp(-t / decay)


def filtered(signal: np.ndarray, btype: str, cutoff: float | tuple[float, float], rate: int = SAMPLE_RATE,
             order: int = 2) -> np.ndarray:
    """A Butterworth filter, 2nd order by default: the gentle slopes of analog drum machines. Cutoffs
    above 95% of the Nyquist frequency are lowered to it (scipy refuses them)."""
    import scipy.signal

    top = rate / 2 * 0.95
    cutoff = tuple(min(c, top) for c in cutoff) if isinstance(cutoff, tuple) else min(cutoff, top)
    sos = scipy.signal.butter(order, cutoff, btype=btype, fs=rate, output="sos")
    return scipy.signal.sosfilt(sos, signal)


METAL_HZ = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)
"""The TR-808's six detuned square waves, its cymbal and hi-hat source."""


def _metal(t: np.ndarray) -> np.ndarray:
    return sum(np.sign(np.sin(2 * np.pi * f * t)) for f in METAL_HZ)


def sweep(t: np.ndarray, start_hz: float, end_hz: float, sweep_time: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A sine whose pitch falls exponentially from start_hz to end_hz: a kick's or a tom's body."""
    freq = end_hz + (start_hz - end_hz) * np.exp(-t / sweep_time)
    return np.sin(2 * np.pi * np.cumsum(freq) / rate)


def kick(rng: np.random.Generator) -> np.ndarray:
    t = time_axis(0.6)
    body = sweep(t, rng.uniform(120, 180), rng.uniform(40, 55), 0.04) * _envelope(t, rng.uniform(0.12, 0.2))
    click = filtered(rng.standard_normal(t.size), "highpass", 2000) * _envelope(t, 0.003) * 0.3
    return body + click


def snare(rng: np.random.Generator) -> np.ndarray:
    t = time_axis(0.5)
    pitch = rng.uniform(170, 220)
    body = np.sin(2 * np.pi * pitch * t) * _envelope(t, 0.04) + 0.5 * np.sin(2 * np.pi * pitch * 1.8 * t) * _envelope(
        t, 0.03)
    wires = filtered(filtered(rng.standard_normal(t.size), "highpass", 1200), "lowpass", 9000)
    wires *= _envelope(t, rng.uniform(0.09, 0.15))
    return 0.5 * body + wires / np.abs(wires).max()


def hihat(rng: np.random.Generator) -> np.ndarray:
    t = time_axis(0.3)
    source = filtered(_metal(t), "bandpass", (7000, 12000))
    source += 0.5 * filtered(rng.standard_normal(t.size), "highpass", 7000)
    return filtered(source, "highpass", 6000) * _envelope(t, rng.uniform(0.03, 0.06))


def crash(rng: np.random.Generator) -> np.ndarray:
    t = time_axis(2.0)
    source = 0.6 * filtered(_metal(t), "bandpass", (3000, 12000))
    source += filtered(rng.standard_normal(t.size), "highpass", 3000)
    return filtered(source, "highpass", 2500) * _envelope(t, rng.uniform(0.7, 1.1), attack=0.003)


def ride(rng: np.random.Generator) -> np.ndarray:
    t = time_axis(1.5)
    wash = filtered(_metal(t), "bandpass", (3000, 10000)) * _envelope(t, rng.uniform(0.6, 0.9))
    ping = np.sin(2 * np.pi * rng.uniform(550, 700) * t) * _envelope(t, 0.3)
    noise = filtered(rng.standard_normal(t.size), "highpass", 5000) * _envelope(t, 0.4)
    return wash / np.abs(wash).max() + 0.15 * ping + 0.3 * noise / np.abs(noise).max()


def tom(rng: np.random.Generator) -> np.ndarray:
    t = time_axis(0.8)
    body = sweep(t, rng.uniform(160, 260), rng.uniform(80, 130), 0.08) * _envelope(t, rng.uniform(0.25, 0.35))
    return body + 0.1 * filtered(rng.standard_normal(t.size), "lowpass", 2000) * _envelope(t, 0.02)


def clap(rng: np.random.Generator) -> np.ndarray:
    t = time_axis(0.4)
    noise = filtered(rng.standard_normal(t.size), "bandpass", (900, 3500))
    bursts = sum(_envelope(np.clip(t - d, 0, None), 0.007) * (t >= d) for d in (0, 0.01, 0.02))
    tail = _envelope(np.clip(t - 0.03, 0, None), rng.uniform(0.08, 0.14)) * (t >= 0.03)
    return noise * (bursts + tail)


def noise_burst(rng: np.random.Generator) -> np.ndarray:
    t = time_axis(rng.uniform(0.2, 1.0))
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
