"""`python -m bench`: see bench/serving_bench.py."""

from bench.serving_bench import main

raise SystemExit(main())
