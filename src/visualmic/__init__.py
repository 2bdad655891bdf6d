"""visualmic: recover sound from video of vibrating surfaces.

>>> import visualmic
>>> rec = visualmic.recover("clip.mkv", fps=2200)  # doctest: +SKIP
>>> rec.audio, rec.rate_hz  # doctest: +SKIP
"""

__version__ = "0.1.0"

from .api import Recovery, recover  # noqa: E402
from .config import RecoverOptions  # noqa: E402
from .errors import InputError  # noqa: E402

__all__ = ["recover", "Recovery", "RecoverOptions", "InputError", "__version__"]
