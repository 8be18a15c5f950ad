"""`python -m shim` is the `shield` command. Shims call shim.run.main with their baked config."""

from __future__ import annotations

from shim.cli import main

raise SystemExit(main())
