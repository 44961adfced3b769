"""The runtime: what the service, the Lambda and `maskdetect predict` need, and nothing else of the package.

The service image and the Lambda copy this folder whole; it never reads the environment
(maskdetect.settings does) and imports TensorFlow or LiteRT only when a model of that kind is loaded.
"""
