import sys

from ragsafe.cli.main import main

sys.exit(main())
