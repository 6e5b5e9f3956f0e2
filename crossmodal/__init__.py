"""crossmodal: learn to classify paired images and sounds.

The public API is in its modules: `crossmodal.train.train`, `crossmodal.evaluate.evaluate`,
`crossmodal.predict.predict`, `crossmodal.data.preprocess.preprocess` and the settings in
`crossmodal.config` (README, "Python API"). TensorFlow is imported only when a function that
needs it is first used, so `import crossmodal` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"
