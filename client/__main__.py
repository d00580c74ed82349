"""`python -m client`: the gateway command-line client."""

from client.cli import main

raise SystemExit(main())
