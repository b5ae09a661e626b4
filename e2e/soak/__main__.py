"""``python e2e/soak [--duration N]`` or ``cd e2e && python -m soak``."""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# Run as a directory, Python puts the package itself first on the path: put
# e2e/ there instead, so ``soak.*`` and the e2e helpers import the same way.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

from soak.run import main  # noqa: E402

sys.exit(main())
