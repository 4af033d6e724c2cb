from autokey.entrypoints.cli import main

raise SystemExit(main())
