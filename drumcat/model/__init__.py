"""Models: bundles and cards, runtimes (LiteRT, Keras), the per-file pipeline, metrics, evaluation, training
(train/) and adaptation. TensorFlow is imported only by what loads or trains a Keras model."""
