"""Audio and features: reading files, decoding, resampling, feature recipes, fingerprints, synthesized one-shots."""
