from serving.modelserver.cli import main

raise SystemExit(main())
