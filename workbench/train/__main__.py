from workbench.train.cli import main

raise SystemExit(main())
