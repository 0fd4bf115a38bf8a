"""Synthesized electronic kits for training: a parametric drum synthesizer whose parameters are drawn
once per kit, so each kit is a distinct set of sounds, as two drum machines are.

Recipes follow how analog and digital drum machines make their sounds: pitch-swept sine kicks, tone
plus filtered-noise snares with varied wire amounts, tuned membrane toms (Bessel-ratio modes), square
clusters and noise for hats (open and closed decays), inharmonic partials for cymbals with crash,
ride (a bell "ping" over a quieter wash) and china (trashy, band-limited) decays and spectra, a crash
from the hats' square cluster as analog machines make theirs (long low band, shorter high band), claps as
noise bursts, and a few percussion voices. Whole kits are held out for validation and test like real
ones (`split_of_kit`). Everything is seeded by the kit's number, so `make dataset` writes the same audio.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from drumcat.audio.synth import METAL_HZ, filtered, sweep, time_axis

TRAIN_KITS, VALIDATION_KITS, TEST_KITS = 150, 20, 20
ALL_KITS = range(TRAIN_KITS + VALIDATION_KITS + TEST_KITS)
PREFIX = "synthkit:"  # a kit's name in the manifest: PREFIX + its number
SOURCE = "synthesized-kits"  # the kits' source name in the manifest


def split_of_kit(number: int) -> str:
    if number < TRAIN_KITS:
        return "train"
    return "validation" if number < TRAIN_KITS + VALIDATION_KITS else "test"


def _decay(t: np.ndarray, seconds: float, attack: float = 0.0005) -> np.ndarray:
    """An exponential decay reaching -60 dB after `seconds`, after a short linear attack."""
    return np.minimum(t / attack, 1.0) * np.exp(-6.9 * t / seconds)


def _normalized(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.abs(x).max()), 1e-9)


class KitVoice:
    """The parameters one kit draws; each method renders one instrument of the kit."""

    def __init__(self, rng: np.random.Generator, rate: int) -> None:
        self.rng, self.rate = rng, rate
        self.drive = rng.uniform(1.0, 4.0) if rng.random() < 0.4 else 0.0  # a kit's saturation
        self.tone = rng.uniform(5000, 11000)  # a kit's top end (sampler bandwidth, tape)
        self.metal_base = rng.uniform(0.7, 1.5)  # scales the square-cluster frequencies
        self.noise_metal = rng.random()  # hats and cymbals: more noise or more square cluster

    def _time(self, seconds: float) -> np.ndarray:
        return time_axis(seconds, self.rate)

    def _filter(self, signal: np.ndarray, btype: str, cutoff: float | tuple[float, float], order: int = 2
                ) -> np.ndarray:
        return filtered(signal, btype, cutoff, self.rate, order)

    def _sweep(self, t: np.ndarray, start_hz: float, end_hz: float, seconds: float) -> np.ndarray:
        return sweep(t, start_hz, end_hz, seconds, self.rate)

    def finish(self, x: np.ndarray) -> np.ndarray:
        if self.drive:
            x = np.tanh(self.drive * _normalized(x))
        return _normalized(self._filter(x, "lowpass", self.tone) if self.tone < 10_500 else x)

    def _squares(self, t: np.ndarray) -> np.ndarray:
        """The kit's six detuned square waves (the TR-808's, scaled), each at a random phase."""
        freqs = np.array(METAL_HZ) * self.metal_base
        return sum(np.sign(np.sin(2 * np.pi * f * t + self.rng.uniform(0, 6.3))) for f in freqs) / 6

    def _metal(self, t: np.ndarray) -> np.ndarray:
        return (1 - self.noise_metal) * self._squares(t) + self.noise_metal * self.rng.standard_normal(t.size)

    def _partials(self, t: np.ndarray, count: int, low: float, high: float, decay: float, tilt: float) -> np.ndarray:
        """Inharmonic sine partials, log-spaced at random; higher ones decay faster when tilt > 0."""
        freqs = np.exp(self.rng.uniform(np.log(low), np.log(high), count))
        out = np.zeros(t.size)
        for f in freqs:
            life = decay * (f / low) ** (-tilt) * self.rng.uniform(0.6, 1.4)
            out += self.rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f * t + self.rng.uniform(0, 6.3)) * _decay(t, life)
        return out

    def kick(self) -> np.ndarray:
        r = self.rng
        t = self._time(r.uniform(0.3, 1.5))
        body = self._sweep(t, r.uniform(90, 300), r.uniform(35, 70), r.uniform(0.01, 0.08)) * _decay(t, t[-1])
        noise = self._filter(r.standard_normal(t.size), "highpass", r.uniform(1000, 5000))
        click = noise * _decay(t, r.uniform(0.005, 0.02))
        return body + r.uniform(0, 0.6) * click

    def snare(self) -> np.ndarray:
        r = self.rng
        t = self._time(r.uniform(0.2, 0.8))
        pitch = r.uniform(140, 300)
        overtone = pitch * r.uniform(1.5, 2.3)
        body = np.sin(2 * np.pi * pitch * t) + r.uniform(0.2, 0.8) * np.sin(2 * np.pi * overtone * t)
        body *= _decay(t, r.uniform(0.05, 0.25))
        low = r.uniform(600, 3000)
        wires = self._filter(r.standard_normal(t.size), "bandpass", (low, r.uniform(low * 2.5, 11000)))
        wires = _normalized(wires) * _decay(t, t[-1])
        return r.uniform(0.2, 1.0) * _normalized(body) + r.uniform(0.4, 1.5) * wires

    def rim(self) -> np.ndarray:
        r = self.rng
        t = self._time(r.uniform(0.05, 0.2))
        tone = sum(np.sin(2 * np.pi * f * t) for f in r.uniform(400, 2200, 2)) * _decay(t, r.uniform(0.01, 0.06))
        return tone + 0.5 * self._filter(r.standard_normal(t.size), "highpass", 2000) * _decay(t, 0.004)

    def tom(self, height: float) -> np.ndarray:
        r = self.rng
        t = self._time(r.uniform(0.4, 1.5))
        f0 = (60 + 220 * height) * r.uniform(0.85, 1.15)
        body = self._sweep(t, f0 * r.uniform(1.1, 1.6), f0, r.uniform(0.02, 0.15)) * _decay(t, t[-1])
        modes = sum(r.uniform(0, 0.3) * np.sin(2 * np.pi * f0 * ratio * t) * _decay(t, t[-1] / 3)
                    for ratio in (1.59, 2.14, 2.30))
        stick = self._filter(r.standard_normal(t.size), "lowpass", 3000) * _decay(t, 0.015)
        return body + modes + r.uniform(0, 0.4) * stick

    def hihat(self, open_: bool) -> np.ndarray:
        r = self.rng
        t = self._time(r.uniform(0.3, 1.2) if open_ else r.uniform(0.05, 0.25))
        source = self._filter(self._metal(t), "highpass", r.uniform(5000, 8500), order=4)
        return source * _decay(t, t[-1], attack=0.001)

    def crash(self) -> np.ndarray:
        r = self.rng
        t = self._time(2.0)
        decay = r.uniform(1.5, 4.0)
        partials = self._partials(t, int(r.integers(60, 160)), 300, 10000, decay, r.uniform(0, 0.4))
        noise = self._filter(r.standard_normal(t.size), "highpass", r.uniform(2000, 5000)) * _decay(t, decay * 0.7)
        return _normalized(partials) + r.uniform(0.3, 1.2) * _normalized(noise) * _decay(t, 10, r.uniform(.002, .03))

    def analog_crash(self) -> np.ndarray:
        """A cymbal made as analog machines make it (the TR-808's, the CR-78's): the same square cluster as
        the hats, through a lower band that rings long and a higher one that dies sooner. Without it every
        synthesized square cluster is a hat, which teaches that such a cluster never is a cymbal."""
        r = self.rng
        t = self._time(2.0)
        squares = self._squares(t)
        centre = r.uniform(2500, 4500)
        low = self._filter(squares, "bandpass", (centre / 1.4, centre * 1.4)) * _decay(t, r.uniform(0.8, 2.0))
        high = self._filter(squares, "highpass", r.uniform(6000, 9000)) * _decay(t, r.uniform(0.3, 1.0))
        return r.uniform(0.4, 1.0) * _normalized(low) + r.uniform(0.3, 1.0) * _normalized(high)

    def ride(self) -> np.ndarray:
        r = self.rng
        t = self._time(2.0)
        bell = r.uniform(350, 900)
        ping = sum(a * np.sin(2 * np.pi * bell * ratio * t) for a, ratio in ((1, 1), (0.5, 2.76), (0.3, 5.4)))
        ping *= _decay(t, r.uniform(0.8, 2.5))
        wash = self._partials(t, int(r.integers(30, 90)), 2000, 10000, r.uniform(1.0, 3.0), r.uniform(0.2, 0.6))
        stick = self._filter(r.standard_normal(t.size), "highpass", 3000) * _decay(t, r.uniform(0.01, 0.05))
        return r.uniform(0.3, 1.0) * _normalized(ping) + r.uniform(0.2, 0.6) * _normalized(wash) + 0.4 * stick

    def china(self) -> np.ndarray:
        r = self.rng
        t = self._time(2.0)
        partials = self._partials(t, int(r.integers(80, 200)), 500, 6000, r.uniform(0.8, 2.0), r.uniform(0.3, 0.8))
        trash = np.tanh(r.uniform(2, 6) * _normalized(partials))
        return self._filter(trash, "bandpass", (r.uniform(400, 1200), r.uniform(5000, 9000))) * _decay(t, 2.0, 0.002)

    def clap(self) -> np.ndarray:
        r = self.rng
        t = self._time(r.uniform(0.2, 0.6))
        centre = r.uniform(800, 2500)
        noise = self._filter(r.standard_normal(t.size), "bandpass", (centre / 1.8, centre * 1.8))
        gaps = np.cumsum(r.uniform(0.006, 0.015, int(r.integers(2, 6))))
        bursts = sum(_decay(np.clip(t - d, 0, None), 0.03) * (t >= d) for d in (0, *gaps))
        tail = _decay(np.clip(t - gaps[-1], 0, None), r.uniform(0.1, 0.5)) * (t >= gaps[-1])
        return noise * (bursts + tail)

    def cowbell(self) -> np.ndarray:
        r = self.rng
        t = self._time(r.uniform(0.15, 0.6))
        f = r.uniform(450, 650)
        tone = np.sign(np.sin(2 * np.pi * f * t)) + np.sign(np.sin(2 * np.pi * f * 1.48 * t))
        return self._filter(tone, "bandpass", (f * 0.8, f * 4)) * _decay(t, t[-1])

    def shaker(self) -> np.ndarray:
        r = self.rng
        t = self._time(r.uniform(0.1, 0.3))
        rise = r.uniform(0.01, 0.05)
        envelope = np.minimum(t / rise, 1.0) * np.exp(-np.clip(t - rise, 0, None) / r.uniform(0.02, 0.06))
        return self._filter(r.standard_normal(t.size), "highpass", r.uniform(4000, 8000)) * envelope


def _instruments(voice: KitVoice) -> list[tuple[str, str, Callable[[], np.ndarray]]]:
    """(fine label, instrument name, renderer) for every sound of a kit."""
    return [("Kick", "kick", voice.kick), ("Snare", "snare", voice.snare), ("Rim", "rim", voice.rim),
            ("Tom", "low tom", lambda: voice.tom(0.1)), ("Tom", "high tom", lambda: voice.tom(0.8)),
            ("Hihat", "closed hat", lambda: voice.hihat(False)), ("Hihat", "open hat", lambda: voice.hihat(True)),
            ("Crash", "crash", voice.crash), ("Ride", "ride", voice.ride), ("China", "china", voice.china),
            ("Clap", "clap", voice.clap), ("Cowbell", "cowbell", voice.cowbell), ("Shaker", "shaker", voice.shaker),
            ("Crash", "analog crash", voice.analog_crash)]  # last: the sounds before it keep their draws


def kit_sounds(number: int, rate: int) -> Iterator[tuple[str, str, np.ndarray]]:
    """(fine label, instrument name, samples at `rate`) for every sound of synthesized kit `number`."""
    voice = KitVoice(np.random.default_rng(10_000 + number), rate)
    for label, name, render in _instruments(voice):
        yield label, name, (voice.finish(render()) * 0.89).astype(np.float32)

