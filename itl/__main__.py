from itl.cli import main

raise SystemExit(main())
